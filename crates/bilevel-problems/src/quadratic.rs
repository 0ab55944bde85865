//! `quadratic`: the quadratic benchmark with a closed-form hyper-objective (docs/PROBLEMS.md §D).

use crate::affine::{gemv, rm, row_dot};
use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_positive, check_range, ProblemError};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::rng::Rng;
use bilevel_core::vector::{axpy, dot};
use bilevel_core::{Batch, NamedArray};
use faer::linalg::solvers::{Llt, Solve};
use faer::{Mat, Side};

pub use bilevel_core::Level;

/// The rank-one factors of one sample `i`: the sample's objective is
/// `½(uᵀy)² + ½(wᵀx)² + (pᵀx)(qᵀy) + aᵀy + bᵀx`, i.e. `A_i = u uᵀ`, `B_i = w wᵀ`,
/// `C_i = p qᵀ` (`m_x × d`, entering as `xᵀC_i y`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleFactors<'a> {
    /// `u_i ∈ R^d`.
    pub u: &'a [f64],
    /// `w_i ∈ R^{m_x}`.
    pub w: &'a [f64],
    /// `p_i ∈ R^{m_x}`.
    pub p: &'a [f64],
    /// `q_i ∈ R^d`.
    pub q: &'a [f64],
    /// `a_i ∈ R^d`.
    pub a: &'a [f64],
    /// `b_i ∈ R^{m_x}`.
    pub b: &'a [f64],
}

impl SampleFactors<'_> {
    /// The sample's objective `½(uᵀy)² + ½(wᵀx)² + (pᵀx)(qᵀy) + aᵀy + bᵀx` (no ridge).
    pub fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        let (uy, wx) = (dot(self.u, y), dot(self.w, x));
        0.5 * uy * uy
            + 0.5 * wx * wx
            + dot(self.p, x) * dot(self.q, y)
            + dot(self.a, y)
            + dot(self.b, x)
    }
}

/// The averaged dense matrices of one level, row-major: the level's objective is
/// `½ yᵀA y + ½ xᵀB x + xᵀC y + a_vecᵀy + b_vecᵀx` (plus the ridge for f).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AveragedMatrices<'a> {
    /// `(1/n) Σ u_i u_iᵀ`, d×d.
    pub a: &'a [f64],
    /// `(1/n) Σ w_i w_iᵀ`, m_x×m_x.
    pub b: &'a [f64],
    /// `(1/n) Σ p_i q_iᵀ`, m_x×d.
    pub c: &'a [f64],
    /// `(1/n) Σ a_i`, d.
    pub a_vec: &'a [f64],
    /// `(1/n) Σ b_i`, m_x.
    pub b_vec: &'a [f64],
}

/// Row-major per-sample factors of one level.
#[derive(Clone, Debug)]
struct Samples {
    count: usize,
    /// count×d.
    u: Vec<f64>,
    /// count×m_x.
    w: Vec<f64>,
    /// count×m_x.
    p: Vec<f64>,
    /// count×d.
    q: Vec<f64>,
    /// count×d.
    a: Vec<f64>,
    /// count×m_x.
    b: Vec<f64>,
}

/// Averaged dense matrices of one level (row-major).
#[derive(Clone, Debug)]
struct Averages {
    /// Ā, d×d.
    a: Vec<f64>,
    /// B̄, m_x×m_x.
    b: Vec<f64>,
    /// C̄, m_x×d.
    c: Vec<f64>,
    /// C̄ᵀ, d×m_x.
    ct: Vec<f64>,
    /// ā, d.
    av: Vec<f64>,
    /// b̄, m_x.
    bv: Vec<f64>,
}

/// A faer matrix as row-major data.
fn rows_of(m: &Mat<f64>) -> Vec<f64> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut out = Vec::with_capacity(r * c);
    for i in 0..r {
        out.extend((0..c).map(|j| m[(i, j)]));
    }
    out
}

/// `rows×cols` independent `N(0, scale²)` entries from sub-stream `stream` of `seed`.
fn normals(seed: u64, stream: u64, len: usize, scale: f64) -> Vec<f64> {
    let mut rng = Rng::substream(seed, stream);
    let mut v = vec![0.0; len];
    rng.fill_normal(&mut v);
    v.iter_mut().for_each(|e| *e *= scale);
    v
}

/// The population from which both levels' samples are drawn.
struct Population<'a> {
    d: usize,
    mx: usize,
    /// `U D` (d×d): `u = U D z`, `z ~ N(0, I)`.
    ud: &'a Mat<f64>,
    /// Mean coupling G (m_x×d), `E[p qᵀ] = G`.
    g: &'a Mat<f64>,
    /// Noise scale of q around `Gᵀp`.
    q_noise: f64,
    /// Standard deviation of w's entries (`E[w wᵀ] = w_std² I`).
    w_std: f64,
    /// Means of a and b.
    a_mean: &'a [f64],
    b_mean: &'a [f64],
}

impl Samples {
    fn draw(pop: &Population<'_>, count: usize, seed: u64, stream: u64) -> Samples {
        let (d, mx) = (pop.d, pop.mx);
        let z = normals(seed, stream, count * d, 1.0);
        let u = rows_of(&(rm(&z, count, d) * pop.ud.transpose()));
        let w = normals(seed, stream + 1, count * mx, pop.w_std);
        let p = normals(seed, stream + 2, count * mx, 1.0);
        let xi = normals(seed, stream + 3, count * d, pop.q_noise);
        let mut q = rows_of(&(rm(&p, count, mx) * pop.g));
        q.iter_mut().zip(&xi).for_each(|(a, b)| *a += b);
        let mut a = normals(seed, stream + 4, count * d, 1.0 / (d as f64).sqrt());
        for row in a.chunks_exact_mut(d) {
            row.iter_mut().zip(pop.a_mean).for_each(|(r, m)| *r += m);
        }
        let mut b = normals(seed, stream + 5, count * mx, 1.0 / (mx as f64).sqrt());
        for row in b.chunks_exact_mut(mx) {
            row.iter_mut().zip(pop.b_mean).for_each(|(r, m)| *r += m);
        }
        Samples {
            count,
            u,
            w,
            p,
            q,
            a,
            b,
        }
    }

    fn factors(&self, i: usize, d: usize, mx: usize) -> SampleFactors<'_> {
        SampleFactors {
            u: &self.u[i * d..(i + 1) * d],
            w: &self.w[i * mx..(i + 1) * mx],
            p: &self.p[i * mx..(i + 1) * mx],
            q: &self.q[i * d..(i + 1) * d],
            a: &self.a[i * d..(i + 1) * d],
            b: &self.b[i * mx..(i + 1) * mx],
        }
    }

    /// `out += s Σ_{i∈B} ∇ₖ` of the samples' quadratic (`s = w/|B|`), with respect to y
    /// (`wrt_y`): `u_i(u_iᵀy) + q_i(p_iᵀx) + a_i`, else to x: `w_i(w_iᵀx) + p_i(q_iᵀy) + b_i`.
    fn add_grad(
        &self,
        b: &Batch<'_>,
        wrt_y: bool,
        x: &[f64],
        y: &[f64],
        (d, mx): (usize, usize),
        out: &mut [f64],
    ) {
        let s = b.sum_scale();
        for &i in b.indices {
            let f = self.factors(i, d, mx);
            // (own factor, its variable, coupling factor, coupling dot factor, other variable,
            // linear term)
            let (e, z, g, h, z2, c) = if wrt_y {
                (f.u, y, f.q, f.p, x, f.a)
            } else {
                (f.w, x, f.p, f.q, y, f.b)
            };
            let (ez, hz) = (s * dot(e, z), s * dot(h, z2));
            for (o, ((e, g), c)) in out[..e.len()].iter_mut().zip(e.iter().zip(g).zip(c)) {
                *o += e * ez + g * hz + s * c;
            }
        }
    }

    fn averages(&self, d: usize, mx: usize) -> Averages {
        let n = self.count;
        let inv = 1.0 / n as f64;
        let (u, w) = (rm(&self.u, n, d), rm(&self.w, n, mx));
        let (p, q) = (rm(&self.p, n, mx), rm(&self.q, n, d));
        let am = u.transpose() * u;
        let bm = w.transpose() * w;
        let cm = p.transpose() * q;
        let mean = |data: &[f64], len: usize| {
            let mut v = vec![0.0; len];
            for row in data.chunks_exact(len) {
                v.iter_mut().zip(row).for_each(|(a, r)| *a += r);
            }
            v.iter_mut().for_each(|a| *a *= inv);
            v
        };
        let scaled = |m: &Mat<f64>| {
            let mut v = rows_of(m);
            v.iter_mut().for_each(|e| *e *= inv);
            v
        };
        let a = scaled(&am);
        // Symmetrise exactly (the product is symmetric up to rounding).
        let a = (0..d * d)
            .map(|k| 0.5 * (a[k] + a[(k % d) * d + k / d]))
            .collect();
        let b = scaled(&bm);
        let b = (0..mx * mx)
            .map(|k| 0.5 * (b[k] + b[(k % mx) * mx + k / mx]))
            .collect();
        let c = scaled(&cm);
        let ct = (0..d * mx).map(|k| c[(k % mx) * d + k / mx]).collect();
        Averages {
            a,
            b,
            c,
            ct,
            av: mean(&self.a, d),
            bv: mean(&self.b, mx),
        }
    }
}

/// `quadratic`: stochastic quadratic lower and upper levels with exact answers.
///
/// * `g(x, y) = (1/n) Σ_i [½ yᵀA_i y + ½ xᵀB_i x + xᵀC_i y + a_iᵀy + b_iᵀx]`,
///   `f(x, y) = (1/m) Σ_j [same form with its own samples] + (ρ/2)‖x‖²`
///   (`x ∈ R^{m_x}`, `y ∈ R^d`, `C_i` of shape `m_x × d`, ρ = `ridge`);
/// * rank-one samples (the factors are stored, [`Quadratic::sample_factors`]):
///   `A_i = u_i u_iᵀ`, `u_i = U D z_i ~ N(0, U D² Uᵀ)` with `U` a random orthogonal matrix and `D²`
///   log-spaced in `[μ, L]`, so `E[A_i]` has spectrum `[μ, L]` (the empirical mean Ā only
///   approximately, roughly `[(1 − √(d/n))² μ, (1 + √(d/n))² L]`);
///   `B_i = w_i w_iᵀ`, `w_i ~ N(0, μ I)`;
///   `C_i = p_i q_iᵀ` with `p_i ~ N(0, I)` and `q_i = Gᵀp_i + σ_G ξ_i`, `ξ_i ~ N(0, I)`, so that
///   `E[C_i] = G` (a fixed random `m_x × d` matrix with `N(0, σ_G²)` entries,
///   `σ_G = √μ/(√d + √m_x)`, `‖G‖ ≈ √μ`; f and g have independent G);
///   `a_i ~ N(ā₀, I/d)`, `b_i ~ N(b̄₀, I/m_x)` with means `ā₀ ~ N(0, I/d)`, `b̄₀ ~ N(0, I/m_x)`
///   (own means for f and g);
/// * the oracles are full-batch: they use the averaged dense matrices (Ā, B̄, C̄, ā, b̄ of g and
///   `A_f, B_f, C_f, a_f, b_f` of f), precomputed; `H v = Ā v`, `J v = C̄ v`;
/// * `S(x) = {y*(x)}`, `y*(x) = −Ā⁻¹(ā + C̄ᵀx)` (Ā ≻ 0 needs `n ≥ d`), intrinsic dimension 0;
/// * `∇φ(x) = ∇_x f − C̄ Ā⁻¹ ∇_y f` at `y*(x)`, with `∇_x f = (B_f + ρI) x + C_f y + b_f`,
///   `∇_y f = A_f y + C_fᵀ x + a_f`;
/// * φ is quadratic: with `M = −Ā⁻¹C̄ᵀ` (`= ∂y*/∂x`),
///   `∇²φ = B_f + ρI + MᵀA_f M + C_f M + MᵀC_fᵀ`; the last two terms are indefinite, so at
///   construction the upper coupling factors `p` of f (hence `C_f`) are multiplied by
///   `s = min(1, (ρ/2)/|λ_min(C_f M + MᵀC_fᵀ)|)` ([`Quadratic::upper_coupling_scale`]), which
///   guarantees `∇²φ ⪰ (ρ/2) I`; then `x* = −(∇²φ)⁻¹∇φ(0)` is the unique bilevel solution and
///   `φ* = φ(x*)`.
///
/// Defaults (configuration): `n = m = 1024`, `d = m_x = 100`, `μ = 0.1`, `L = 1`, `ρ = 1`,
/// seed 0, start `x = 0`, `y = 0`; the instance takes about 0.1 s to build (debug build). For
/// these defaults the empirical Ā has spectrum ≈ [0.077, 1.16], `∇²φ` ≈ [0.92, 2.51] and the
/// upper coupling scale is s ≈ 0.79.
#[derive(Clone)]
pub struct Quadratic {
    d: usize,
    mx: usize,
    seed: u64,
    mu: f64,
    l: f64,
    ridge: f64,
    lower: Samples,
    upper: Samples,
    g_avg: Averages,
    f_avg: Averages,
    a_llt: Llt<f64>,
    lower_eigenvalues: Vec<f64>,
    hess_phi_eigenvalues: Vec<f64>,
    upper_coupling_scale: f64,
    x_star: Vec<f64>,
    phi_star: f64,
}

impl std::fmt::Debug for Quadratic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quadratic")
            .field("n_inner", &self.lower.count)
            .field("n_outer", &self.upper.count)
            .field("dim_y", &self.d)
            .field("dim_x", &self.mx)
            .field("mu", &self.mu)
            .field("l", &self.l)
            .field("ridge", &self.ridge)
            .field("seed", &self.seed)
            .field("upper_coupling_scale", &self.upper_coupling_scale)
            .finish_non_exhaustive()
    }
}

/// Parameters of [`Quadratic::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuadraticParams {
    /// Number n of lower samples (`n ≥ dim_y`).
    pub n_inner: usize,
    /// Number m of upper samples.
    pub n_outer: usize,
    /// Lower dimension d.
    pub dim_y: usize,
    /// Upper dimension m_x.
    pub dim_x: usize,
    /// Smallest eigenvalue μ of `E[A_i]` (`0 < μ ≤ L`).
    pub mu: f64,
    /// Largest eigenvalue L of `E[A_i]`.
    pub l: f64,
    /// Seed of the instance.
    pub seed: u64,
    /// Ridge ρ > 0 of the upper objective.
    pub ridge: f64,
}

impl Default for QuadraticParams {
    fn default() -> Self {
        QuadraticParams {
            n_inner: 1024,
            n_outer: 1024,
            dim_y: 100,
            dim_x: 100,
            mu: 0.1,
            l: 1.0,
            seed: 0,
            ridge: 1.0,
        }
    }
}

impl Quadratic {
    /// Largest accepted `dim_y`, `dim_x`.
    pub const MAX_DIM: usize = 2000;
    /// Largest accepted number of stored factor entries per level (`count · 3(d + m_x)`).
    pub const MAX_ENTRIES: usize = 60_000_000;

    /// A random instance (see the type's documentation); every parameter is validated and an
    /// error names the offending key.
    pub fn new(params: QuadraticParams) -> Result<Self, ProblemError> {
        let QuadraticParams {
            n_inner: n,
            n_outer: m,
            dim_y: d,
            dim_x: mx,
            mu,
            l,
            seed,
            ridge,
        } = params;
        for (field, v) in [("dim_y", d), ("dim_x", mx)] {
            check_range(field, v, 1..=Self::MAX_DIM, "in")?;
        }
        if n < d {
            return Err(ProblemError::invalid(
                "n_inner",
                format!(
                    "must be at least dim_y = {d} (the empirical Ā = (1/n) Σ u_i u_iᵀ has rank ≤ n)"
                ),
                n,
            ));
        }
        if m == 0 {
            return Err(ProblemError::invalid("n_outer", "must be at least 1", m));
        }
        for (field, count) in [("n_inner", n), ("n_outer", m)] {
            if count.saturating_mul(3 * (d + mx)) > Self::MAX_ENTRIES {
                return Err(ProblemError::invalid(
                    field,
                    format!(
                        "too many samples for the dimensions (at most {} stored factor entries per level)",
                        Self::MAX_ENTRIES
                    ),
                    count,
                ));
            }
        }
        check_positive("mu", mu)?;
        check_positive("l", l)?;
        if mu > l {
            return Err(ProblemError::invalid(
                "mu",
                format!("must satisfy 0 < mu ≤ l = {l}"),
                mu,
            ));
        }
        check_positive("ridge", ridge)?;

        // Population: U (QR of a Gaussian matrix), D² log-spaced in [μ, L], couplings, means.
        let gauss = Mat::from_fn(d, d, {
            let z = normals(seed, 1, d * d, 1.0);
            move |i, j| z[i * d + j]
        });
        let u_orth = gauss.qr().compute_Q();
        let d2 = |k: usize| {
            if d == 1 {
                l
            } else {
                mu * (l / mu).powf(k as f64 / (d - 1) as f64)
            }
        };
        let ud = Mat::from_fn(d, d, |i, j| u_orth[(i, j)] * d2(j).sqrt());
        let sigma_g = mu.sqrt() / ((d as f64).sqrt() + (mx as f64).sqrt());
        let draw_g = |stream| {
            let z = normals(seed, stream, mx * d, sigma_g);
            Mat::from_fn(mx, d, |i, j| z[i * d + j])
        };
        let (g_low, g_up) = (draw_g(2), draw_g(3));
        let a_mean_low = normals(seed, 4, d, 1.0 / (d as f64).sqrt());
        let b_mean_low = normals(seed, 5, mx, 1.0 / (mx as f64).sqrt());
        let a_mean_up = normals(seed, 6, d, 1.0 / (d as f64).sqrt());
        let b_mean_up = normals(seed, 7, mx, 1.0 / (mx as f64).sqrt());
        let pop_low = Population {
            d,
            mx,
            ud: &ud,
            g: &g_low,
            q_noise: sigma_g,
            w_std: mu.sqrt(),
            a_mean: &a_mean_low,
            b_mean: &b_mean_low,
        };
        let pop_up = Population {
            g: &g_up,
            a_mean: &a_mean_up,
            b_mean: &b_mean_up,
            ..pop_low
        };
        let lower = Samples::draw(&pop_low, n, seed, 10);
        let mut upper = Samples::draw(&pop_up, m, seed, 20);
        let g_avg = lower.averages(d, mx);
        let mut f_avg = upper.averages(d, mx);

        let a_mat = Mat::from_fn(d, d, |i, j| g_avg.a[i * d + j]);
        let lower_eigenvalues = a_mat.self_adjoint_eigenvalues(Side::Lower).map_err(|e| {
            ProblemError::invalid("seed", format!("eigenvalues of Ā failed: {e:?}"), seed)
        })?;
        let (lo, hi) = (lower_eigenvalues[0], lower_eigenvalues[d - 1]);
        if lo.is_nan() || lo <= 1e-10 * hi {
            return Err(ProblemError::invalid(
                "n_inner",
                format!(
                    "the empirical Ā is numerically singular (λ_min = {lo:e}); use more samples"
                ),
                n,
            ));
        }
        let a_llt = a_mat.llt(Side::Lower).map_err(|e| {
            ProblemError::invalid("n_inner", format!("Cholesky of Ā failed: {e:?}"), n)
        })?;

        // ∇²φ = B_f + ρI + MᵀA_f M + C_f M + MᵀC_fᵀ, M = −Ā⁻¹C̄ᵀ.
        let ct = Mat::from_fn(d, mx, |i, j| g_avg.ct[i * mx + j]);
        let mmat = {
            let mut s = a_llt.solve(&ct);
            s.col_iter_mut()
                .for_each(|c| c.iter_mut().for_each(|e| *e = -*e));
            s
        };
        let fa = rm(&f_avg.a, d, d);
        let fc = rm(&f_avg.c, mx, d);
        let quad = mmat.transpose() * (fa * &mmat);
        let cm = fc * &mmat;
        let sym = Mat::from_fn(mx, mx, |i, j| cm[(i, j)] + cm[(j, i)]);
        let sym_min = sym.self_adjoint_eigenvalues(Side::Lower).map_err(|e| {
            ProblemError::invalid("seed", format!("eigenvalues of ∇²φ failed: {e:?}"), seed)
        })?[0];
        let upper_coupling_scale = if sym_min < -0.5 * ridge {
            0.5 * ridge / -sym_min
        } else {
            1.0
        };
        if upper_coupling_scale < 1.0 {
            let s = upper_coupling_scale;
            upper.p.iter_mut().for_each(|e| *e *= s);
            f_avg.c.iter_mut().for_each(|e| *e *= s);
            f_avg.ct.iter_mut().for_each(|e| *e *= s);
        }
        let hess = Mat::from_fn(mx, mx, |i, j| {
            let sym_ij = 0.5 * (quad[(i, j)] + quad[(j, i)]);
            f_avg.b[i * mx + j]
                + if i == j { ridge } else { 0.0 }
                + sym_ij
                + upper_coupling_scale * sym[(i, j)]
        });
        let hess_phi_eigenvalues = hess.self_adjoint_eigenvalues(Side::Lower).map_err(|e| {
            ProblemError::invalid("seed", format!("eigenvalues of ∇²φ failed: {e:?}"), seed)
        })?;
        let hess_llt = hess.llt(Side::Lower).map_err(|e| {
            ProblemError::invalid("seed", format!("∇²φ is not positive definite: {e:?}"), seed)
        })?;

        let mut q = Quadratic {
            d,
            mx,
            seed,
            mu,
            l,
            ridge,
            lower,
            upper,
            g_avg,
            f_avg,
            a_llt,
            lower_eigenvalues,
            hess_phi_eigenvalues,
            upper_coupling_scale,
            x_star: vec![0.0; mx],
            phi_star: 0.0,
        };
        // x* = −(∇²φ)⁻¹ ∇φ(0), then one Newton refinement step (φ is quadratic).
        let mut x = vec![0.0; mx];
        for _ in 0..2 {
            let g = q.grad_phi(&x);
            let step = hess_llt.solve(Mat::from_fn(mx, 1, |i, _| g[i]));
            x.iter_mut()
                .enumerate()
                .for_each(|(i, xi)| *xi -= step[(i, 0)]);
        }
        q.phi_star = q.phi(&x);
        q.x_star = x;
        Ok(q)
    }

    /// The seed of the instance.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Number of samples of a level (n for [`Level::Lower`], m for [`Level::Upper`]).
    pub fn sample_count(&self, level: Level) -> usize {
        self.samples(level).count
    }
    /// The rank-one factors of sample `i` of `level` (`None` if `i` is out of range). The full-batch
    /// oracles are exactly the averages of these samples (plus the ridge for f).
    pub fn sample_factors(&self, level: Level, i: usize) -> Option<SampleFactors<'_>> {
        let s = self.samples(level);
        (i < s.count).then(|| s.factors(i, self.d, self.mx))
    }
    /// The ridge ρ of f.
    pub fn ridge(&self) -> f64 {
        self.ridge
    }
    /// `(μ, L)`: the configured spectrum of `E[A_i]`.
    pub fn spectrum_bounds(&self) -> (f64, f64) {
        (self.mu, self.l)
    }
    /// Eigenvalues of the empirical Ā = H (ascending): the strong-convexity and smoothness
    /// constants of g in y are the first and last.
    pub fn lower_eigenvalues(&self) -> &[f64] {
        &self.lower_eigenvalues
    }
    /// Eigenvalues of `∇²φ` (ascending, all ≥ ρ/2).
    pub fn hess_phi_eigenvalues(&self) -> &[f64] {
        &self.hess_phi_eigenvalues
    }
    /// The factor s ∈ (0, 1] applied to f's coupling factors so that `∇²φ ⪰ (ρ/2) I`.
    pub fn upper_coupling_scale(&self) -> f64 {
        self.upper_coupling_scale
    }
    /// The bilevel solution `x*`.
    pub fn x_star(&self) -> &[f64] {
        &self.x_star
    }
    /// Averaged dense matrices of a level (for f without the ridge).
    pub fn averaged(&self, level: Level) -> AveragedMatrices<'_> {
        let a = match level {
            Level::Lower => &self.g_avg,
            Level::Upper => &self.f_avg,
        };
        AveragedMatrices {
            a: &a.a,
            b: &a.b,
            c: &a.c,
            a_vec: &a.av,
            b_vec: &a.bv,
        }
    }

    fn samples(&self, level: Level) -> &Samples {
        match level {
            Level::Lower => &self.lower,
            Level::Upper => &self.upper,
        }
    }

    /// `Ā⁻¹ r`.
    fn solve_a(&self, r: &[f64]) -> Vec<f64> {
        let sol = self.a_llt.solve(Mat::from_fn(self.d, 1, |i, _| r[i]));
        (0..self.d).map(|i| sol[(i, 0)]).collect()
    }

    /// `y*(x) = −Ā⁻¹(ā + C̄ᵀx)`.
    fn y_star(&self, x: &[f64]) -> Vec<f64> {
        let mut r = self.g_avg.av.clone();
        gemv(rm(&self.g_avg.ct, self.d, self.mx), x, 1.0, true, &mut r);
        r.iter_mut().for_each(|e| *e = -*e);
        self.solve_a(&r)
    }

    fn phi(&self, x: &[f64]) -> f64 {
        self.f(x, &self.y_star(x))
    }

    /// `∇φ(x) = ∇_x f − C̄ Ā⁻¹ ∇_y f` at `y*(x)`.
    fn grad_phi(&self, x: &[f64]) -> Vec<f64> {
        let y = self.y_star(x);
        let (mut gx, mut gy) = (vec![0.0; self.mx], vec![0.0; self.d]);
        self.grad_f(x, &y, &mut gx, &mut gy);
        let v = self.solve_a(&gy);
        gemv(rm(&self.g_avg.c, self.mx, self.d), &v, -1.0, true, &mut gx);
        gx
    }
}

/// `½ zᵀ M z` for a row-major square M (no allocation).
fn half_quad(m: &[f64], z: &[f64]) -> f64 {
    let n = z.len();
    0.5 * z
        .iter()
        .zip(m.chunks_exact(n))
        .map(|(zi, row)| zi * dot(row, z))
        .sum::<f64>()
}

/// `xᵀ C y` for a row-major `m_x × d` C (no allocation).
fn bilinear(c: &[f64], x: &[f64], y: &[f64]) -> f64 {
    x.iter()
        .zip(c.chunks_exact(y.len()))
        .map(|(xi, row)| xi * dot(row, y))
        .sum()
}

impl GenericLowerGradient for Quadratic {
    /// `∇_y g = Ā y + C̄ᵀ x + ā`.
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (d, mx) = (self.d, self.mx);
        for (i, o) in out.iter_mut().enumerate() {
            *o = row_dot(&self.g_avg.a[i * d..(i + 1) * d], y)
                + row_dot(&self.g_avg.ct[i * mx..(i + 1) * mx], x)
                + self.g_avg.av[i];
        }
    }
    /// `∇_x g = B̄ x + C̄ y + b̄`.
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (d, mx) = (self.d, self.mx);
        for (k, o) in out.iter_mut().enumerate() {
            *o = row_dot(&self.g_avg.b[k * mx..(k + 1) * mx], x)
                + row_dot(&self.g_avg.c[k * d..(k + 1) * d], y)
                + self.g_avg.bv[k];
        }
    }
}

impl ProblemDef for Quadratic {
    fn shape(&self) -> Shape {
        Shape::new("quadratic", self.mx, self.d)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        let a = &self.f_avg;
        half_quad(&a.a, y)
            + half_quad(&a.b, x)
            + 0.5 * self.ridge * dot(x, x)
            + bilinear(&a.c, x, y)
            + dot(&a.av, y)
            + dot(&a.bv, x)
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        let a = &self.g_avg;
        half_quad(&a.a, y)
            + half_quad(&a.b, x)
            + bilinear(&a.c, x, y)
            + dot(&a.av, y)
            + dot(&a.bv, x)
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        let (d, mx, a) = (self.d, self.mx, &self.f_avg);
        // ∇_y f = A_f y + C_fᵀ x + a_f.
        gy.copy_from_slice(&a.av);
        gemv(rm(&a.a, d, d), y, 1.0, true, gy);
        gemv(rm(&a.ct, d, mx), x, 1.0, true, gy);
        // ∇_x f = (B_f + ρI) x + C_f y + b_f.
        gx.iter_mut()
            .zip(x.iter().zip(&a.bv))
            .for_each(|(g, (xi, bi))| *g = self.ridge * xi + bi);
        gemv(rm(&a.b, mx, mx), x, 1.0, true, gx);
        gemv(rm(&a.c, mx, d), y, 1.0, true, gx);
    }
    fn grad_g_y(&self, x: &[f64], y: &[f64], gy: &mut [f64]) {
        let (d, mx, a) = (self.d, self.mx, &self.g_avg);
        gy.copy_from_slice(&a.av);
        gemv(rm(&a.a, d, d), y, 1.0, true, gy);
        gemv(rm(&a.ct, d, mx), x, 1.0, true, gy);
    }
    fn grad_g_x(&self, x: &[f64], y: &[f64], gx: &mut [f64]) {
        let (d, mx, a) = (self.d, self.mx, &self.g_avg);
        gx.copy_from_slice(&a.bv);
        gemv(rm(&a.b, mx, mx), x, 1.0, true, gx);
        gemv(rm(&a.c, mx, d), y, 1.0, true, gx);
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        gemv(rm(&self.g_avg.a, self.d, self.d), v, 1.0, false, out);
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        gemv(rm(&self.g_avg.c, self.mx, self.d), v, 1.0, false, out);
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        gemv(rm(&self.f_avg.a, self.d, self.d), v, 1.0, false, out);
        true
    }
    /// The averaged matrices of both levels, row-major: `g_A` (d×d), `g_B` (m×m), `g_C` (m×d),
    /// `g_a` (d), `g_b` (m), the same for f (`f_*`, without the ridge) and `ridge`, so that
    /// `g = ½yᵀAy + ½xᵀBx + xᵀCy + aᵀy + bᵀx` (and f plus `½ρ‖x‖²`).
    fn export_arrays(&self) -> Vec<NamedArray> {
        let (d, mx) = (self.d, self.mx);
        let mut out = Vec::new();
        for (p, a) in [("g", &self.g_avg), ("f", &self.f_avg)] {
            out.push(NamedArray::matrix(format!("{p}_A"), d, d, a.a.clone()));
            out.push(NamedArray::matrix(format!("{p}_B"), mx, mx, a.b.clone()));
            out.push(NamedArray::matrix(format!("{p}_C"), mx, d, a.c.clone()));
            out.push(NamedArray::vector(format!("{p}_a"), a.av.clone()));
            out.push(NamedArray::vector(format!("{p}_b"), a.bv.clone()));
        }
        out.push(NamedArray::vector("ridge", vec![self.ridge]));
        out
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(self.phi(x))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(self.grad_phi(x))
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(self.y_star(x))
    }
    fn intrinsic_dimension(&self) -> usize {
        0
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(self.x_star.clone())
    }
    fn reference_phi_star(&self) -> Option<f64> {
        Some(self.phi_star)
    }

    fn sample_count(&self, level: Level) -> usize {
        self.samples(level).count
    }
    /// `s Σ_{i∈B} [u_i(u_iᵀy) + q_i(p_iᵀx) + a_i]`, `s = w/|B|`.
    fn grad_g_y_batch(&self, x: &[f64], y: &[f64], b: &Batch<'_>, gy: &mut [f64]) {
        gy.fill(0.0);
        self.lower.add_grad(b, true, x, y, (self.d, self.mx), gy);
    }
    /// `s Σ_{i∈B} [w_i(w_iᵀx) + p_i(q_iᵀy) + b_i]`.
    fn grad_g_x_batch(&self, x: &[f64], y: &[f64], b: &Batch<'_>, gx: &mut [f64]) {
        gx.fill(0.0);
        self.lower.add_grad(b, false, x, y, (self.d, self.mx), gx);
    }
    /// The same sums over f's samples, plus the ridge `ρx` (deterministic, not weighted).
    fn grad_f_batch(&self, x: &[f64], y: &[f64], b: &Batch<'_>, gx: &mut [f64], gy: &mut [f64]) {
        gy.fill(0.0);
        self.upper.add_grad(b, true, x, y, (self.d, self.mx), gy);
        gx.iter_mut()
            .zip(x)
            .for_each(|(g, xi)| *g = self.ridge * xi);
        self.upper.add_grad(b, false, x, y, (self.d, self.mx), gx);
    }
    /// `s Σ_{i∈B} u_i(u_iᵀv)`.
    fn hvp_batch(&self, _x: &[f64], _y: &[f64], b: &Batch<'_>, v: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        let (d, s) = (self.d, b.sum_scale());
        for &i in b.indices {
            let u = &self.lower.u[i * d..(i + 1) * d];
            axpy(out, s * dot(u, v), u);
        }
    }
    /// The three lower batch oracles in one pass over the batch's factors:
    /// `∇_y g = s Σ [u_i(u_iᵀy) + q_i(p_iᵀx) + a_i]`, `H v = s Σ u_i(u_iᵀv)`, `J v = s Σ p_i(q_iᵀv)`.
    fn lower_batch(
        &self,
        x: &[f64],
        y: &[f64],
        b: &Batch<'_>,
        v: &[f64],
        gy: &mut [f64],
        hv: &mut [f64],
        jv: &mut [f64],
    ) {
        gy.fill(0.0);
        hv.fill(0.0);
        jv.fill(0.0);
        let (d, mx, s) = (self.d, self.mx, b.sum_scale());
        for &i in b.indices {
            let f = self.lower.factors(i, d, mx);
            let (uy, uv) = (s * dot(f.u, y), s * dot(f.u, v));
            let (px, qv) = (s * dot(f.p, x), s * dot(f.q, v));
            for (k, ((u, q), a)) in f.u.iter().zip(f.q).zip(f.a).enumerate() {
                gy[k] += u * uy + q * px + s * a;
                hv[k] += u * uv;
            }
            axpy(jv, qv, f.p);
        }
    }
    /// `s Σ_{i∈B} p_i(q_iᵀv)`.
    fn cross_batch(&self, _x: &[f64], _y: &[f64], b: &Batch<'_>, v: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        let (d, mx, s) = (self.d, self.mx, b.sum_scale());
        for &i in b.indices {
            let q = &self.lower.q[i * d..(i + 1) * d];
            axpy(out, s * dot(q, v), &self.lower.p[i * mx..(i + 1) * mx]);
        }
    }
}

problem_config! {
    /// Parameters of `quadratic` ([`Quadratic`]).
    QuadraticConfig {
        /// Number n of lower samples, `n ≥ dim_y` (default 1024).
        n_inner: usize,
        /// Number m of upper samples, ≥ 1 (default 1024).
        n_outer: usize,
        /// Lower dimension d (default 100).
        dim_y: usize,
        /// Upper dimension m_x (default 100).
        dim_x: usize,
        /// Smallest eigenvalue μ of the mean lower Hessian, `0 < mu ≤ l` (default 0.1).
        mu: f64,
        /// Largest eigenvalue L of the mean lower Hessian (default 1).
        l: f64,
        /// Seed of the random instance (default 0).
        seed: u64,
        /// Ridge ρ > 0: f contains `(ρ/2)‖x‖²` (default 1).
        ridge: f64,
    }
}

impl BuildProblem for QuadraticConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = QuadraticParams::default();
        let def = Quadratic::new(QuadraticParams {
            n_inner: self.n_inner.unwrap_or(d.n_inner),
            n_outer: self.n_outer.unwrap_or(d.n_outer),
            dim_y: self.dim_y.unwrap_or(d.dim_y),
            dim_x: self.dim_x.unwrap_or(d.dim_x),
            mu: self.mu.unwrap_or(d.mu),
            l: self.l.unwrap_or(d.l),
            seed: self.seed.unwrap_or(d.seed),
            ridge: self.ridge.unwrap_or(d.ridge),
        })?;
        let (mx, dy) = (def.dim_x(), def.dim_y());
        self.finish(def, vec![0.0; mx], vec![0.0; dy])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        check_grad_phi, check_gradients, check_products, check_pseudoinverse,
        check_stationary_selection, gaussian,
    };
    use bilevel_core::derivatives::{fd_gradient, relative_error};
    use bilevel_core::vector::norm;

    fn small(n: usize, m: usize, d: usize, mx: usize, seed: u64) -> Quadratic {
        Quadratic::new(QuadraticParams {
            n_inner: n,
            n_outer: m,
            dim_y: d,
            dim_x: mx,
            seed,
            ..QuadraticParams::default()
        })
        .unwrap()
    }

    #[test]
    fn quadratic_minibatch_oracles_are_unbiased_and_full_batch_exact() {
        let p = crate::WithDerivatives::analytic(small(40, 25, 8, 5, 3));
        let mut rng = Rng::new(7);
        let (x, y, v) = (
            gaussian(&mut rng, 5, 1.0),
            gaussian(&mut rng, 8, 1.0),
            gaussian(&mut rng, 8, 1.0),
        );
        crate::testing::check_batch_oracles(&p, &x, &y, &v);
        assert_eq!(bilevel_core::Bilevel::sample_count(&p, Level::Lower), 40);
        assert_eq!(bilevel_core::Bilevel::sample_count(&p, Level::Upper), 25);
    }

    #[test]
    fn quadratic_products_gradients_references() {
        let p = small(40, 25, 8, 5, 3);
        check_products(&p, 51, 4, 1.0);
        check_gradients(&p, 52, 4, 1.0);
        let mut rng = Rng::new(53);
        for _ in 0..4 {
            let x = gaussian(&mut rng, 5, 1.0);
            check_grad_phi(&p, &x);
            check_stationary_selection(&p, &x);
            let c = check_pseudoinverse(&p, &x);
            let e = relative_error(&c.eigenvalues, p.lower_eigenvalues(), 1e-300);
            assert!(e < 1e-12, "H's spectrum is Ā's: {e:e}");
        }
        // At x* both sides are rounding noise (‖∇φ(x*)‖ ~ 1e-16): compare absolutely.
        let c = crate::testing::pinv_hypergrad(
            &crate::testing::wrap(&p, crate::wrapper::Derivatives::Analytic),
            p.x_star(),
            &p.reference_y(p.x_star()).unwrap(),
        );
        assert!(norm(&c.hypergrad) < 1e-12, "{:?}", c.hypergrad);
    }

    #[test]
    fn quadratic_oracles_are_the_per_sample_averages() {
        let p = small(7, 6, 5, 3, 11);
        assert_eq!(
            (p.sample_count(Level::Lower), p.sample_count(Level::Upper)),
            (7, 6)
        );
        assert!(p.sample_factors(Level::Lower, 7).is_none());
        assert!(p.sample_factors(Level::Upper, 5).is_some());
        let mut rng = Rng::new(1);
        for _ in 0..3 {
            let x = gaussian(&mut rng, 3, 1.0);
            let y = gaussian(&mut rng, 5, 1.0);
            let avg = |level: Level, count: usize| {
                (0..count)
                    .map(|i| p.sample_factors(level, i).unwrap().value(&x, &y))
                    .sum::<f64>()
                    / count as f64
            };
            let g = avg(Level::Lower, 7);
            let f = avg(Level::Upper, 6) + 0.5 * p.ridge() * dot(&x, &x);
            assert!(
                (p.g(&x, &y) - g).abs() < 1e-12 * (1.0 + g.abs()),
                "{} vs {g}",
                p.g(&x, &y)
            );
            assert!(
                (p.f(&x, &y) - f).abs() < 1e-12 * (1.0 + f.abs()),
                "{} vs {f}",
                p.f(&x, &y)
            );
            // Gradients from the factors: ∇_y = u(uᵀy) + q(pᵀx) + a, ∇_x = w(wᵀx) + p(qᵀy) + b.
            let grads = |level: Level, count: usize| {
                let (mut gx, mut gy) = (vec![0.0; 3], vec![0.0; 5]);
                for i in 0..count {
                    let s = p.sample_factors(level, i).unwrap();
                    let (uy, wx, px, qy) = (dot(s.u, &y), dot(s.w, &x), dot(s.p, &x), dot(s.q, &y));
                    let c = count as f64;
                    for (k, g) in gy.iter_mut().enumerate() {
                        *g += (s.u[k] * uy + s.q[k] * px + s.a[k]) / c;
                    }
                    for (k, g) in gx.iter_mut().enumerate() {
                        *g += (s.w[k] * wx + s.p[k] * qy + s.b[k]) / c;
                    }
                }
                (gx, gy)
            };
            let (gx, gy) = grads(Level::Lower, 7);
            let (mut ox, mut oy) = (vec![0.0; 3], vec![0.0; 5]);
            p.grad_g_x(&x, &y, &mut ox);
            p.grad_g_y(&x, &y, &mut oy);
            assert!(relative_error(&ox, &gx, 1.0) < 1e-12);
            assert!(relative_error(&oy, &gy, 1.0) < 1e-12);
            let (mut fx, fy) = grads(Level::Upper, 6);
            fx.iter_mut()
                .zip(&x)
                .for_each(|(g, xi)| *g += p.ridge() * xi);
            p.grad_f(&x, &y, &mut ox, &mut oy);
            assert!(relative_error(&ox, &fx, 1.0) < 1e-12);
            assert!(relative_error(&oy, &fy, 1.0) < 1e-12);
            // H v = (1/n) Σ u (uᵀv), J v = (1/n) Σ p (qᵀv).
            let v = gaussian(&mut rng, 5, 1.0);
            let (mut hv, mut jv) = (vec![0.0; 5], vec![0.0; 3]);
            for i in 0..7 {
                let s = p.sample_factors(Level::Lower, i).unwrap();
                let (uv, qv) = (dot(s.u, &v), dot(s.q, &v));
                (0..5).for_each(|k| hv[k] += s.u[k] * uv / 7.0);
                (0..3).for_each(|k| jv[k] += s.p[k] * qv / 7.0);
            }
            let (mut ohv, mut ojv) = (vec![0.0; 5], vec![0.0; 3]);
            p.hvp_analytic(&x, &y, &v, &mut ohv);
            p.cross_analytic(&x, &y, &v, &mut ojv);
            assert!(relative_error(&ohv, &hv, 1.0) < 1e-12);
            assert!(relative_error(&ojv, &jv, 1.0) < 1e-12);
        }
        // The pieces the references are built from are the same averages.
        let a = p.averaged(Level::Lower).a;
        let mut a00 = 0.0;
        for i in 0..7 {
            a00 += p.sample_factors(Level::Lower, i).unwrap().u[0].powi(2) / 7.0;
        }
        assert!((a[0] - a00).abs() < 1e-14);
    }

    #[test]
    fn quadratic_default_instance_exact_answers() {
        let start = std::time::Instant::now();
        let p = Quadratic::new(QuadraticParams::default()).unwrap();
        let built = start.elapsed();
        let (mu, l) = p.spectrum_bounds();
        let ev = p.lower_eigenvalues();
        // Loose: the empirical spectrum of Ā, n = 1024 samples in d = 100, is roughly [μ, L].
        assert!(ev[0] > 0.3 * mu && ev[0] < 1.5 * mu, "λ_min(Ā) = {}", ev[0]);
        assert!(
            ev[99] > 0.7 * l && ev[99] < 2.0 * l,
            "λ_max(Ā) = {}",
            ev[99]
        );
        let hev = p.hess_phi_eigenvalues();
        assert!(hev[0] >= 0.5 * p.ridge() - 1e-10, "{}", hev[0]);
        let xs = p.x_star().to_vec();
        let g = p.reference_grad_phi(&xs).unwrap();
        assert!(norm(&g) < 1e-8, "‖∇φ(x*)‖ = {:e}", norm(&g));
        assert_eq!(p.reference_x_star(), Some(xs.clone()));
        let phi_star = p.reference_phi_star().unwrap();
        assert_eq!(Some(phi_star), p.reference_phi(&xs));
        let mut rng = Rng::new(7);
        for _ in 0..2 {
            let x = gaussian(&mut rng, 100, 1.0);
            // y*(x) is stationary for g.
            let y = p.reference_y(&x).unwrap();
            let mut gy = vec![0.0; 100];
            p.grad_g_y(&x, &y, &mut gy);
            assert!(norm(&gy) < 1e-10, "‖∇_y g(x, y*)‖ = {:e}", norm(&gy));
            // ∇φ vs central differences of φ (φ is quadratic: FD is exact up to rounding).
            let gp = p.reference_grad_phi(&x).unwrap();
            let fd = fd_gradient(|z| p.reference_phi(z).unwrap(), &x, 1e-4);
            let e = relative_error(&gp, &fd, 1.0);
            assert!(e < 1e-6, "∇φ vs FD rel err {e:e}");
            // φ(x) − φ* = ½(x − x*)ᵀ∇²φ(x − x*) ≥ (ρ/4)‖x − x*‖².
            let dx: Vec<f64> = x.iter().zip(&xs).map(|(a, b)| a - b).collect();
            let gap = p.reference_phi(&x).unwrap() - phi_star;
            assert!(
                gap >= 0.25 * p.ridge() * dot(&dx, &dx) * (1.0 - 1e-9),
                "{gap}"
            );
        }
        // The implicit part of the hypergradient at x = 0 is not negligible: ‖C̄ Ā⁻¹ ∇_y f‖ is
        // comparable to ‖∇_x f‖.
        let (x0, y0) = (vec![0.0; 100], p.reference_y(&[0.0; 100]).unwrap());
        let (mut fx, mut fy) = (vec![0.0; 100], vec![0.0; 100]);
        p.grad_f(&x0, &y0, &mut fx, &mut fy);
        let h0 = p.reference_grad_phi(&x0).unwrap();
        let implicit: Vec<f64> = fx.iter().zip(&h0).map(|(a, b)| a - b).collect();
        assert!(
            norm(&implicit) > 0.1 * norm(&fx),
            "{} vs {}",
            norm(&implicit),
            norm(&fx)
        );
        println!(
            "quadratic defaults: built in {built:?}; λ(Ā) ∈ [{:.4}, {:.4}]; λ(∇²φ) ∈ [{:.4}, {:.4}]; \
             upper coupling scale {:.4}; ‖x*‖ = {:.4}; φ* = {:.6}; ‖∇φ(0)‖ = {:.4}; \
             ‖∇_x f(0, y*)‖ = {:.4}, ‖implicit part‖ = {:.4}",
            ev[0],
            ev[99],
            hev[0],
            hev[99],
            p.upper_coupling_scale(),
            norm(&xs),
            phi_star,
            norm(&h0),
            norm(&fx),
            norm(&implicit),
        );
    }

    #[test]
    fn quadratic_is_deterministic_per_seed() {
        let a = small(30, 20, 6, 4, 5);
        let b = small(30, 20, 6, 4, 5);
        let c = small(30, 20, 6, 4, 6);
        assert_eq!(a.averaged(Level::Lower), b.averaged(Level::Lower));
        assert_eq!(a.averaged(Level::Upper), b.averaged(Level::Upper));
        assert_eq!(a.x_star(), b.x_star());
        assert_eq!(
            a.sample_factors(Level::Upper, 3),
            b.sample_factors(Level::Upper, 3)
        );
        assert_ne!(a.averaged(Level::Lower).a, c.averaged(Level::Lower).a);
        assert_ne!(a.x_star(), c.x_star());
    }

    #[test]
    fn quadratic_parameters_are_validated() {
        let err = |f: fn(&mut QuadraticParams)| {
            let mut p = QuadraticParams {
                n_inner: 20,
                n_outer: 10,
                dim_y: 5,
                dim_x: 3,
                ..QuadraticParams::default()
            };
            f(&mut p);
            Quadratic::new(p).unwrap_err().to_string()
        };
        assert!(err(|p| p.n_inner = 0).starts_with("problem.n_inner: must be at least dim_y = 5"));
        assert!(err(|p| p.n_inner = 4).starts_with("problem.n_inner:"));
        assert_eq!(
            err(|p| p.n_outer = 0),
            "problem.n_outer: must be at least 1 (got 0)"
        );
        assert!(err(|p| p.dim_y = 0).starts_with("problem.dim_y: must be in 1..=2000"));
        assert!(err(|p| p.dim_x = 0).starts_with("problem.dim_x:"));
        assert_eq!(
            err(|p| p.mu = 0.0),
            "problem.mu: must be positive (got 0.0)"
        );
        assert_eq!(
            err(|p| p.mu = -1.0),
            "problem.mu: must be positive (got -1.0)"
        );
        assert_eq!(
            err(|p| p.mu = 2.0),
            "problem.mu: must satisfy 0 < mu ≤ l = 1 (got 2.0)"
        );
        assert!(err(|p| p.l = f64::NAN).starts_with("problem.l: must be a finite number"));
        assert_eq!(
            err(|p| p.ridge = 0.0),
            "problem.ridge: must be positive (got 0.0)"
        );
        assert!(err(|p| p.n_outer = usize::MAX).starts_with("problem.n_outer: too many samples"));
        // Edge cases build: d = 1, m_x = 1, n = d, μ = L.
        let q = Quadratic::new(QuadraticParams {
            n_inner: 1,
            n_outer: 1,
            dim_y: 1,
            dim_x: 1,
            mu: 0.5,
            l: 0.5,
            ..QuadraticParams::default()
        })
        .unwrap();
        assert!(norm(&q.reference_grad_phi(q.x_star()).unwrap()) < 1e-10);
    }
}
