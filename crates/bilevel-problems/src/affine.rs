//! `affine`: an affine subspace of dimension `d − r` as lower-level solution set, with a strongly
//! convex quadratic upper level (docs/PROBLEMS.md §A).

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_range, ProblemError};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::rng::Rng;
use bilevel_core::vector::dot;
use bilevel_core::NamedArray;
use faer::linalg::matmul::matmul;
use faer::linalg::solvers::{PartialPivLu, Solve};
use faer::{Accum, ColMut, ColRef, Mat, MatRef, Par, Side};

/// `affine`: least squares with a wide matrix below, a strongly convex quadratic above.
///
/// * `g(x, y) = ½‖A y − B x‖²`, `A ∈ R^{r×d}` of full row rank `r < d`, `B ∈ R^{r×m}`;
/// * `S(x) = {y : A y = B x}`, an affine subspace of intrinsic dimension `k = d − r`;
/// * `f(x, y) = ½ yᵀQy + (c₀ + C x)ᵀy + ¼‖x‖²` with `Q ≻ 0`;
/// * `y*(x)` and the multiplier λ solve the KKT system
///   `[[Q, Aᵀ], [A, 0]] [y; λ] = [−(c₀ + C x); B x]`; `φ(x) = f(x, y*(x))`;
/// * `∇φ(x) = ½x + Cᵀy* − Bᵀλ` (envelope theorem on the Lagrangian), which equals the
///   pseudoinverse formula `∇_x f − J H^† ∇_y f` with `H = AᵀA`, `J = −BᵀA`.
///
/// The nonzero eigenvalues of H are the squared singular values of A (the smallest is the PL
/// constant, [`Affine::pl_constant`]); at `y*` the kernel part of `∇_y f = −Aᵀλ` is zero.
///
/// Random instance from a seed (all randomness through [`Rng`]): `A_ij ~ N(0, 1/d)`,
/// `B_ij ~ N(0, 1/m)`, `c₀ ~ N(0, I)`, `C_ij ~ N(0, 1/m)`, `Q = I + M Mᵀ/d` with `M_ij ~ N(0, 1)`;
/// B and C are then scaled by one factor s ≤ 1 so that `∇²φ ⪰ ¼I` (φ is quadratic), which gives
/// the bilevel problem a unique solution [`Affine::x_star`].
/// Matrices are dense and row-major; `AᵀA`, `AᵀB`, `BᵀA`, `BᵀB` are precomputed so that every
/// oracle is a few matrix-vector products and allocates nothing; the KKT matrix is factorised
/// once at construction.
#[derive(Clone)]
pub struct Affine {
    d: usize,
    r: usize,
    m: usize,
    seed: u64,
    /// r×d.
    a: Vec<f64>,
    /// r×m.
    b: Vec<f64>,
    /// d.
    c0: Vec<f64>,
    /// d×m.
    c: Vec<f64>,
    /// d×d.
    q: Vec<f64>,
    /// H = AᵀA, d×d.
    h: Vec<f64>,
    /// AᵀB, d×m.
    atb: Vec<f64>,
    /// BᵀA, m×d (so that `J v = −BᵀA v` reads contiguous rows).
    bta: Vec<f64>,
    /// BᵀB, m×m.
    btb: Vec<f64>,
    /// KKT matrix `[[Q, Aᵀ], [A, 0]]` and its LU factors.
    kkt: Mat<f64>,
    kkt_lu: PartialPivLu<f64>,
    /// Eigenvalues of A Aᵀ, ascending (= the nonzero eigenvalues of H).
    sigma2: Vec<f64>,
    /// Factor applied to the drawn B and C so that ∇²φ ⪰ ¼I.
    upper_scale: f64,
    /// The minimiser of φ (the bilevel solution).
    x_star: Vec<f64>,
}

impl std::fmt::Debug for Affine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Affine")
            .field("d", &self.d)
            .field("r", &self.r)
            .field("m", &self.m)
            .field("seed", &self.seed)
            .field("pl_constant", &self.pl_constant())
            .finish_non_exhaustive()
    }
}

/// Row-major `rows×cols` data as a faer matrix.
fn to_mat(rows: usize, cols: usize, data: &[f64]) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// A faer matrix as row-major data.
fn from_mat(m: &Mat<f64>) -> Vec<f64> {
    let (rows, cols) = (m.nrows(), m.ncols());
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        out.extend((0..cols).map(|j| m[(i, j)]));
    }
    out
}

/// A row-major `rows×cols` slice as a faer view (no copy).
#[inline]
pub(crate) fn rm(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(data, rows, cols)
}

/// `out = alpha · M v` (or `out += alpha · M v` when `accumulate`) by faer's SIMD
/// matrix-vector product, sequential and without allocation.
#[inline]
pub(crate) fn gemv(m: MatRef<'_, f64>, v: &[f64], alpha: f64, accumulate: bool, out: &mut [f64]) {
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let v = ColRef::from_slice(v);
    let out = ColMut::from_slice_mut(out);
    matmul(out.as_mat_mut(), accum, m, v.as_mat(), alpha, Par::Seq);
}

/// `len` independent `N(0, scale²)` entries from sub-stream `stream` of `seed`.
fn gaussian(seed: u64, stream: u64, len: usize, scale: f64) -> Vec<f64> {
    let mut rng = Rng::substream(seed, stream);
    let mut v = vec![0.0; len];
    rng.fill_normal(&mut v);
    v.iter_mut().for_each(|e| *e *= scale);
    v
}

/// `Σ_j row_j v_j` for a generic scalar vector.
#[inline]
pub(crate) fn row_dot<T: Scalar>(row: &[f64], v: &[T]) -> T {
    let mut acc = T::from(0.0);
    for (&a, &vj) in row.iter().zip(v) {
        acc += vj * a;
    }
    acc
}

impl Affine {
    /// Default lower dimension d.
    pub const DEFAULT_D: usize = 20;
    /// Default number of constraints r.
    pub const DEFAULT_R: usize = 5;
    /// Default upper dimension m.
    pub const DEFAULT_M: usize = 3;
    /// Default seed.
    pub const DEFAULT_SEED: u64 = 0;
    /// Largest accepted d and m (dense storage: several d×d matrices).
    pub const MAX_DIM: usize = 2000;

    /// A random instance with `1 ≤ r < d ≤ 2000`, `1 ≤ m ≤ 2000`.
    pub fn new(d: usize, r: usize, m: usize, seed: u64) -> Result<Self, ProblemError> {
        check_range("d", d, 2..=Self::MAX_DIM, "in")?;
        if r == 0 || r >= d {
            return Err(ProblemError::invalid(
                "r",
                format!("must satisfy 1 ≤ r < d = {d} (A must be wide with full row rank)"),
                r,
            ));
        }
        check_range("m", m, 1..=Self::MAX_DIM, "in")?;
        let a = gaussian(seed, 1, r * d, 1.0 / (d as f64).sqrt());
        let mut b = gaussian(seed, 2, r * m, 1.0 / (m as f64).sqrt());
        let c0 = gaussian(seed, 3, d, 1.0);
        let mut c = gaussian(seed, 4, d * m, 1.0 / (m as f64).sqrt());
        let mm = gaussian(seed, 5, d * d, 1.0);

        let am = to_mat(r, d, &a);
        let mmat = to_mat(d, d, &mm);
        let mut qm = &mmat * mmat.transpose();
        for i in 0..d {
            for j in 0..d {
                qm[(i, j)] /= d as f64;
            }
            qm[(i, i)] += 1.0;
        }
        let q = from_mat(&qm);
        let h = from_mat(&(am.transpose() * &am));

        let sigma2 = (&am * am.transpose())
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|e| {
                ProblemError::invalid("seed", format!("eigenvalues of A Aᵀ failed: {e:?}"), seed)
            })?;
        let (lo, hi) = (sigma2[0], sigma2[r - 1]);
        // (NaN-safe: a non-finite spectrum is rejected too.)
        if lo.is_nan() || lo <= 1e-12 * hi {
            return Err(ProblemError::invalid(
                "seed",
                format!("the random A is numerically rank deficient (σ²_min = {lo:e}); use another seed"),
                seed,
            ));
        }

        let n = d + r;
        let kkt = Mat::from_fn(n, n, |i, j| match (i < d, j < d) {
            (true, true) => q[i * d + j],
            (true, false) => a[(j - d) * d + i],
            (false, true) => a[(i - d) * d + j],
            (false, false) => 0.0,
        });
        let kkt_lu = kkt.partial_piv_lu();

        // φ is quadratic: ∇²φ = ½I + M with M e_j = Cᵀ y_j − Bᵀ λ_j, (y_j, λ_j) the KKT solution
        // for x = e_j without c₀. Scaling B and C by s scales M by s², so s² = min(1, ¼/|λ_min(M)|)
        // makes ∇²φ ⪰ ¼ I: the bilevel problem then has a unique minimiser x* (a bounded test
        // instance; unscaled draws can make φ unbounded below).
        let hess = |b: &[f64], c: &[f64]| {
            let rhs = Mat::from_fn(n, m, |i, j| {
                if i < d {
                    -c[i * m + j]
                } else {
                    b[(i - d) * m + j]
                }
            });
            let sol = kkt_lu.solve(&rhs);
            Mat::from_fn(m, m, |i, j| {
                let cy: f64 = (0..d).map(|k| c[k * m + i] * sol[(k, j)]).sum();
                let bl: f64 = (0..r).map(|k| b[k * m + i] * sol[(d + k, j)]).sum();
                cy - bl
            })
        };
        let mh = hess(&b, &c);
        let mh = Mat::from_fn(m, m, |i, j| 0.5 * (mh[(i, j)] + mh[(j, i)]));
        let lmin = mh.self_adjoint_eigenvalues(Side::Lower).map_err(|e| {
            ProblemError::invalid("seed", format!("eigenvalues of ∇²φ failed: {e:?}"), seed)
        })?[0];
        let upper_scale = if lmin < -0.25 {
            (0.25 / -lmin).sqrt()
        } else {
            1.0
        };
        b.iter_mut()
            .chain(c.iter_mut())
            .for_each(|v| *v *= upper_scale);
        let bm = to_mat(r, m, &b);
        let atb = from_mat(&(am.transpose() * &bm));
        let bta = from_mat(&(bm.transpose() * &am));
        let btb = from_mat(&(bm.transpose() * &bm));
        // x* solves ∇²φ x = −∇φ(0), ∇φ(0) = −Bᵀλ₀ + Cᵀ y₀ from the KKT solution at x = 0.
        let mh = hess(&b, &c);
        let hphi = Mat::from_fn(m, m, |i, j| {
            0.5 * (mh[(i, j)] + mh[(j, i)]) + if i == j { 0.5 } else { 0.0 }
        });
        let rhs0 = Mat::from_fn(n, 1, |i, _| if i < d { -c0[i] } else { 0.0 });
        let sol0 = kkt_lu.solve(&rhs0);
        let g0 = Mat::from_fn(m, 1, |i, _| {
            let cy: f64 = (0..d).map(|k| c[k * m + i] * sol0[(k, 0)]).sum();
            let bl: f64 = (0..r).map(|k| b[k * m + i] * sol0[(d + k, 0)]).sum();
            -(cy - bl)
        });
        let xs = hphi.partial_piv_lu().solve(&g0);
        let x_star: Vec<f64> = (0..m).map(|i| xs[(i, 0)]).collect();
        Ok(Affine {
            d,
            r,
            m,
            seed,
            a,
            b,
            c0,
            c,
            q,
            h,
            atb,
            bta,
            btb,
            kkt,
            kkt_lu,
            sigma2,
            upper_scale,
            x_star,
        })
    }

    /// Number of constraints r (rank of A).
    pub fn r(&self) -> usize {
        self.r
    }
    /// The seed the instance was drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// A, r×d row-major.
    pub fn a(&self) -> &[f64] {
        &self.a
    }
    /// B, r×m row-major.
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// Q, d×d row-major.
    pub fn q(&self) -> &[f64] {
        &self.q
    }
    /// c₀ (d entries).
    pub fn c0(&self) -> &[f64] {
        &self.c0
    }
    /// C, d×m row-major.
    pub fn c(&self) -> &[f64] {
        &self.c
    }
    /// The nonzero eigenvalues of `H = AᵀA` (the squared singular values of A), ascending.
    pub fn h_nonzero_eigenvalues(&self) -> &[f64] {
        &self.sigma2
    }
    /// The minimiser `x*` of φ (φ is a quadratic with `∇²φ ⪰ ¼I`), with `y*(x*)` the bilevel
    /// (KKT) solution.
    pub fn x_star(&self) -> &[f64] {
        &self.x_star
    }
    /// The factor s ∈ (0, 1] applied to the drawn B and C (s < 1 only when the raw draw would make
    /// φ nonconvex).
    pub fn upper_scale(&self) -> f64 {
        self.upper_scale
    }
    /// The PL constant of g: the smallest nonzero eigenvalue of H.
    pub fn pl_constant(&self) -> f64 {
        self.sigma2[0]
    }

    /// Solve the KKT system at x (one step of iterative refinement): `(y*, λ)`.
    fn kkt_solve(&self, x: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
        let (d, r, m) = (self.d, self.r, self.m);
        let rhs = Mat::from_fn(d + r, 1, |i, _| {
            if i < d {
                -(self.c0[i] + dot(&self.c[i * m..(i + 1) * m], x))
            } else {
                dot(&self.b[(i - d) * m..(i - d + 1) * m], x)
            }
        });
        let mut sol = self.kkt_lu.solve(&rhs);
        let residual = &rhs - &self.kkt * &sol;
        sol += self.kkt_lu.solve(&residual);
        let y: Vec<f64> = (0..d).map(|i| sol[(i, 0)]).collect();
        let lambda: Vec<f64> = (0..r).map(|i| sol[(d + i, 0)]).collect();
        if y.iter().chain(&lambda).all(|v| v.is_finite()) {
            Some((y, lambda))
        } else {
            None
        }
    }
}

impl GenericLowerGradient for Affine {
    /// `∇_y g = Aᵀ(A y − B x) = H y − AᵀB x`.
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (d, m) = (self.d, self.m);
        for (i, o) in out.iter_mut().enumerate() {
            *o =
                row_dot(&self.h[i * d..(i + 1) * d], y) - row_dot(&self.atb[i * m..(i + 1) * m], x);
        }
    }
    /// `∇_x g = −Bᵀ(A y − B x) = BᵀB x − BᵀA y`.
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (d, m) = (self.d, self.m);
        for (k, o) in out.iter_mut().enumerate() {
            *o = row_dot(&self.btb[k * m..(k + 1) * m], x)
                - row_dot(&self.bta[k * d..(k + 1) * d], y);
        }
    }
}

impl ProblemDef for Affine {
    fn shape(&self) -> Shape {
        Shape::new("affine", self.m, self.d)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        let (d, m) = (self.d, self.m);
        let mut s = 0.25 * dot(x, x);
        for i in 0..d {
            let qy = dot(&self.q[i * d..(i + 1) * d], y);
            let lin = self.c0[i] + dot(&self.c[i * m..(i + 1) * m], x);
            s += y[i] * (0.5 * qy + lin);
        }
        s
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        let (d, m) = (self.d, self.m);
        let mut s = 0.0;
        for i in 0..self.r {
            let res = dot(&self.a[i * d..(i + 1) * d], y) - dot(&self.b[i * m..(i + 1) * m], x);
            s += res * res;
        }
        0.5 * s
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        let (d, m) = (self.d, self.m);
        // ∇_y f = Q y + C x + c₀.
        gemv(rm(&self.q, d, d), y, 1.0, false, gy);
        gemv(rm(&self.c, d, m), x, 1.0, true, gy);
        gy.iter_mut().zip(&self.c0).for_each(|(g, c)| *g += c);
        // ∇_x f = Cᵀ y + ½x.
        gx.iter_mut().zip(x).for_each(|(g, &xi)| *g = 0.5 * xi);
        gemv(rm(&self.c, d, m).transpose(), y, 1.0, true, gx);
    }
    fn grad_g_y(&self, x: &[f64], y: &[f64], gy: &mut [f64]) {
        // H y − AᵀB x.
        let (d, m) = (self.d, self.m);
        gemv(rm(&self.h, d, d), y, 1.0, false, gy);
        gemv(rm(&self.atb, d, m), x, -1.0, true, gy);
    }
    fn grad_g_x(&self, x: &[f64], y: &[f64], gx: &mut [f64]) {
        // BᵀB x − BᵀA y.
        let (d, m) = (self.d, self.m);
        gemv(rm(&self.btb, m, m), x, 1.0, false, gx);
        gemv(rm(&self.bta, m, d), y, -1.0, true, gx);
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        gemv(rm(&self.h, self.d, self.d), v, 1.0, false, out);
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        gemv(rm(&self.bta, self.m, self.d), v, -1.0, false, out);
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        gemv(rm(&self.q, self.d, self.d), v, 1.0, false, out);
        true
    }
    /// `A` (r×d), `B` (r×m), `C` (d×m), `c0` (d), `Q` (d×d), row-major, as used by the oracles
    /// (B and C already scaled).
    fn export_arrays(&self) -> Vec<NamedArray> {
        let (d, r, m) = (self.d, self.r, self.m);
        vec![
            NamedArray::matrix("A", r, d, self.a.clone()),
            NamedArray::matrix("B", r, m, self.b.clone()),
            NamedArray::matrix("C", d, m, self.c.clone()),
            NamedArray::vector("c0", self.c0.clone()),
            NamedArray::matrix("Q", d, d, self.q.clone()),
        ]
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let (y, _) = self.kkt_solve(x)?;
        Some(self.f(x, &y))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let (y, lambda) = self.kkt_solve(x)?;
        let m = self.m;
        let mut g: Vec<f64> = x.iter().map(|xi| 0.5 * xi).collect();
        for (crow, &yi) in self.c.chunks_exact(m).zip(&y) {
            g.iter_mut()
                .zip(crow)
                .for_each(|(gk, &cik)| *gk += cik * yi);
        }
        for (j, &lj) in lambda.iter().enumerate() {
            let brow = &self.b[j * m..(j + 1) * m];
            g.iter_mut()
                .zip(brow)
                .for_each(|(gk, &bjk)| *gk -= bjk * lj);
        }
        Some(g)
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.kkt_solve(x).map(|(y, _)| y)
    }
    fn intrinsic_dimension(&self) -> usize {
        self.d - self.r
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(self.x_star.clone())
    }
    fn reference_phi_star(&self) -> Option<f64> {
        self.reference_phi(&self.x_star)
    }
}

problem_config! {
    /// Parameters of `affine` ([`Affine`]).
    AffineConfig {
        /// Lower dimension d (default 20).
        d: usize,
        /// Number of constraints r, `1 ≤ r < d` (default 5).
        r: usize,
        /// Upper dimension m (default 3).
        m: usize,
        /// Seed of the random instance (default 0).
        seed: u64,
    }
}

impl BuildProblem for AffineConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let def = Affine::new(
            self.d.unwrap_or(Affine::DEFAULT_D),
            self.r.unwrap_or(Affine::DEFAULT_R),
            self.m.unwrap_or(Affine::DEFAULT_M),
            self.seed.unwrap_or(Affine::DEFAULT_SEED),
        )?;
        let (m, d) = (def.dim_x(), def.dim_y());
        self.finish(def, vec![0.5; m], vec![0.0; d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        check_gradients, check_products, check_pseudoinverse, check_references, gaussian,
    };
    use bilevel_core::derivatives::relative_error;

    fn default_instance() -> Affine {
        Affine::new(
            Affine::DEFAULT_D,
            Affine::DEFAULT_R,
            Affine::DEFAULT_M,
            Affine::DEFAULT_SEED,
        )
        .unwrap()
    }

    #[test]
    fn affine_products_gradients_references() {
        let p = default_instance();
        check_products(&p, 70, 5, 1.0);
        check_gradients(&p, 71, 3, 1.0);
        let mut rng = Rng::new(72);
        for _ in 0..4 {
            let x = gaussian(&mut rng, 3, 1.0);
            check_references(&p, &x);
            check_pseudoinverse(&p, &x);
        }
        check_pseudoinverse(&p, &[0.5; 3]);
    }

    #[test]
    fn affine_kkt_selection_is_optimal_on_the_subspace() {
        let p = default_instance();
        let x = [0.3, -1.0, 0.7];
        let (y, lambda) = p.kkt_solve(&x).unwrap();
        // Feasible: A y = B x.
        for i in 0..p.r {
            let res = dot(&p.a[i * p.d..(i + 1) * p.d], &y) - dot(&p.b[i * 3..(i + 1) * 3], &x);
            assert!(res.abs() < 1e-13, "{res}");
        }
        // Stationary: Q y + c₀ + C x + Aᵀλ = 0.
        let (mut gx, mut gy) = (vec![0.0; 3], vec![0.0; p.d]);
        p.grad_f(&x, &y, &mut gx, &mut gy);
        for (j, g) in gy.iter().enumerate() {
            let at_l: f64 = (0..p.r).map(|i| p.a[i * p.d + j] * lambda[i]).sum();
            assert!((g + at_l).abs() < 1e-12, "{}", g + at_l);
        }
        // Moving along ker A increases f (Q ≻ 0, so y* is the unique minimiser on S(x)).
        let phi = p.reference_phi(&x).unwrap();
        let h = Mat::from_fn(p.d, p.d, |i, j| p.h[i * p.d + j]);
        let evd = h.self_adjoint_eigen(Side::Lower).unwrap();
        let (s, u) = (evd.S(), evd.U());
        let tau = 1e-10 * s[p.d - 1];
        let mut rng = Rng::new(3);
        for _ in 0..5 {
            let z = gaussian(&mut rng, p.d, 1.0);
            // Project z on ker A = ker H: remove its components on H's range eigenvectors.
            let mut kz = z.clone();
            for k in 0..p.d {
                if s[k] > tau {
                    let c: f64 = (0..p.d).map(|r| u[(r, k)] * z[r]).sum();
                    (0..p.d).for_each(|r| kz[r] -= c * u[(r, k)]);
                }
            }
            let yz: Vec<f64> = y.iter().zip(&kz).map(|(a, b)| a + 0.1 * b).collect();
            assert!(p.g(&x, &yz) < 1e-24, "stays in S(x)");
            assert!(p.f(&x, &yz) > phi);
        }
    }

    #[test]
    fn affine_large_instance_pseudoinverse_and_spectrum() {
        let p = Affine::new(200, 50, 5, 11).unwrap();
        let mut rng = Rng::new(12);
        let x = gaussian(&mut rng, 5, 1.0);
        check_references(&p, &x);
        let c = check_pseudoinverse(&p, &x);
        assert_eq!(c.null_count, 150);
        // The nonzero eigenvalues of H are the squared singular values of A.
        let nonzero = &c.eigenvalues[150..];
        let e = relative_error(nonzero, p.h_nonzero_eigenvalues(), 1e-300);
        assert!(e < 1e-10, "spectrum mismatch {e:e}");
        assert!(p.pl_constant() > 0.05, "σ²_min = {}", p.pl_constant());
        assert_eq!(p.pl_constant(), p.h_nonzero_eigenvalues()[0]);
    }

    #[test]
    fn affine_is_deterministic_and_validated() {
        let a = Affine::new(10, 3, 2, 5).unwrap();
        let b = Affine::new(10, 3, 2, 5).unwrap();
        let c = Affine::new(10, 3, 2, 6).unwrap();
        assert_eq!(a.a(), b.a());
        assert_eq!(a.q(), b.q());
        assert_ne!(a.a(), c.a());
        assert_eq!(a.intrinsic_dimension(), 7);
        // Q = I + M Mᵀ/d is symmetric with eigenvalues ≥ 1.
        let q = Mat::from_fn(10, 10, |i, j| a.q()[i * 10 + j]);
        let ev = q.self_adjoint_eigenvalues(Side::Lower).unwrap();
        assert!(ev[0] >= 1.0 - 1e-12, "{ev:?}");
        for (r, d) in [(0, 5), (5, 5), (6, 5)] {
            let e = Affine::new(d, r, 2, 0).unwrap_err().to_string();
            assert!(
                e.starts_with("problem.r:") && e.contains(&format!("(got {r})")),
                "{e}"
            );
        }
        assert!(Affine::new(1, 1, 1, 0)
            .unwrap_err()
            .to_string()
            .starts_with("problem.d:"));
        assert!(Affine::new(5, 2, 0, 0)
            .unwrap_err()
            .to_string()
            .starts_with("problem.m:"));
    }
}

#[cfg(test)]
mod x_star_tests {
    use super::*;
    use bilevel_core::Bilevel;

    /// `x*` is the minimiser of φ: ∇φ(x*) = 0 and φ grows in every probed direction (∇²φ ⪰ ¼I).
    #[test]
    fn x_star_minimises_phi() {
        for (d, r, m, seed) in [(20, 5, 3, 0), (200, 50, 5, 0), (30, 10, 8, 3)] {
            let p = crate::WithDerivatives::analytic(Affine::new(d, r, m, seed).unwrap());
            let xs = p.def().x_star().to_vec();
            let g = p.reference_grad_phi(&xs).unwrap();
            assert!(bilevel_core::vector::norm(&g) < 1e-9, "{g:?}");
            let phi0 = p.reference_phi(&xs).unwrap();
            assert_eq!(p.reference_x_star(), Some(xs.clone()));
            assert_eq!(p.reference_phi_star(), Some(phi0));
            let mut rng = bilevel_core::rng::Rng::new(1);
            for _ in 0..5 {
                let mut dir = vec![0.0; m];
                rng.fill_normal(&mut dir);
                let n = bilevel_core::vector::norm(&dir);
                let xp: Vec<f64> = xs.iter().zip(&dir).map(|(a, b)| a + b / n).collect();
                // φ(x* + u) − φ(x*) = ½ uᵀ∇²φ u ≥ ⅛ for a unit u.
                assert!(p.reference_phi(&xp).unwrap() - phi0 >= 0.125 - 1e-9);
            }
        }
    }
}
