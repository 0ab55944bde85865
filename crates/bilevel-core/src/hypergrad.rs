//! The pseudoinverse hypergradient `h = ∇_x f − J H^† ∇_y f` at a given `(x, y)`, with the
//! diagnostics that tell whether it is the gradient of the optimistic hyper-objective φ.
//!
//! Under a local Polyak–Łojasiewicz condition, at the optimistic selection `y*` the right-hand
//! side `b = ∇_y f` lies in `range H` (first-order optimality on the manifold `S(x)` whose tangent
//! space is `ker H`), so `H v = b` is consistent and `h = ∇φ(x)` (Masiha, Shen, Kiyavash, He 2026;
//! docs/ALGORITHMS.md §1). Diagnostics:
//!
//! * the Krylov solve's iterations, relative residual and status;
//! * the **kernel component** `‖P_ker H · b‖`: nonzero means `y` is not the optimistic selection
//!   (the wrong-selection signal), computed by Lanczos from `b` ([`crate::krylov::lanczos`]);
//! * the **intrinsic dimension** `k = d − rank H` of the solution manifold, from a randomised
//!   Nyström sketch of `H` ([`spectral_sketch`]), with `λ_max` and the smallest nonzero eigenvalue
//!   (the PL constant estimate μ).
//!
//! Diagnostic oracle calls are counted apart from the algorithm's ([`Counted::diagnostic`]).

use crate::dense::{sym_eig, DenseError};
use crate::krylov::{
    cg, lanczos, minres, neumann, CgWorkspace, KrylovInfo, KrylovOptions, KrylovStatus,
    LanczosOptions, LanczosWorkspace, LinearOperator, MinresWorkspace, NeumannWorkspace,
};
use crate::oracle::{Bilevel, Counted, DerivativeKind};
use crate::rng::Rng;
use crate::vector::Vector;
use serde::{Deserialize, Serialize};

/// Which linear solver computes `v ≈ (H + γI)^† ∇_y f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinearSolverKind {
    /// Conjugate gradients (from 0 unless warm-started).
    Cg,
    /// MINRES with minimum-norm least-squares correction.
    Minres,
    /// Truncated Neumann series with step `neumann_eta`.
    Neumann,
}

/// Which diagnostics to compute (they cost extra, separately counted, products).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsOptions {
    /// Compute `‖P_ker b‖` by Lanczos from `b`.
    pub kernel_component: bool,
    /// Estimate the intrinsic dimension by a Nyström sketch of H.
    pub intrinsic_dimension: bool,
    /// Eigenvalues `≤ null_rtol · λ_max` count as zero.
    pub null_rtol: f64,
    /// Krylov dimension limit of the kernel-component Lanczos run.
    pub lanczos_max_iter: usize,
    /// Column limit of the Nyström sketch.
    pub sketch_max_columns: usize,
    /// Seed of the sketch's random test vectors.
    pub sketch_seed: u64,
}

impl Default for DiagnosticsOptions {
    fn default() -> Self {
        DiagnosticsOptions {
            kernel_component: true,
            intrinsic_dimension: true,
            null_rtol: 1e-6,
            lanczos_max_iter: 100,
            sketch_max_columns: 512,
            sketch_seed: 0x5eed,
        }
    }
}

/// Options of [`HypergradientSolver::compute`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HypergradOptions {
    /// Linear solver.
    pub solver: LinearSolverKind,
    /// Iteration limit.
    pub max_iter: usize,
    /// Relative residual tolerance.
    pub rtol: f64,
    /// Shift γ ≥ 0 (solve `(H + γI) v = b`).
    pub shift: f64,
    /// Neumann step η (≤ 1/λ_max).
    pub neumann_eta: f64,
    /// Start CG from the previous `v` instead of 0 (faster in AID loops; forfeits the
    /// minimum-norm guarantee when `b` is not in `range H`).
    pub warm_start: bool,
    /// Diagnostics.
    pub diagnostics: DiagnosticsOptions,
}

impl Default for HypergradOptions {
    fn default() -> Self {
        HypergradOptions {
            solver: LinearSolverKind::Minres,
            max_iter: 200,
            rtol: 1e-10,
            shift: 0.0,
            neumann_eta: 0.1,
            warm_start: false,
            diagnostics: DiagnosticsOptions::default(),
        }
    }
}

/// Result of a spectral sketch of H.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectralSketch {
    /// Numerical rank (eigenvalues above `null_rtol · λ_max`).
    pub rank: usize,
    /// `d − rank`: the intrinsic dimension of the solution manifold at a minimiser.
    pub intrinsic_dimension: usize,
    /// Largest eigenvalue estimate.
    pub lambda_max: f64,
    /// Smallest eigenvalue above the threshold (PL constant estimate).
    pub mu: Option<f64>,
    /// Sketch columns used (= operator applications).
    pub columns: usize,
    /// `false` when the column limit was reached before the rank was resolved (then `rank` is a
    /// lower bound and `intrinsic_dimension` an upper bound).
    pub resolved: bool,
}

/// Everything known about one hypergradient evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HypergradDiagnostics {
    /// Linear solver used.
    pub solver: LinearSolverKind,
    /// Krylov iterations.
    pub krylov_iterations: usize,
    /// `‖b − (H + γI) v‖ / ‖b‖`.
    pub relative_residual: f64,
    /// Solver status.
    pub status: KrylovStatus,
    /// `‖∇_y f‖`.
    pub rhs_norm: f64,
    /// `‖P_ker H ∇_y f‖` (None when not computed).
    pub kernel_component: Option<f64>,
    /// `‖P_ker H ∇_y f‖ / max(‖∇_y f‖, ‖h‖)`: relative to the size of what is being computed
    /// (at an exact selection where `∇_y f ≈ 0`, dividing by `‖∇_y f‖` alone would amplify
    /// rounding into a false alarm).
    pub kernel_component_relative: Option<f64>,
    /// Estimated intrinsic dimension `k` (`None` when the sketch hit its column limit).
    pub intrinsic_dimension: Option<usize>,
    /// The sketch ran and reached its column limit before resolving the rank of H.
    #[serde(default)]
    pub sketch_unresolved: bool,
    /// Largest eigenvalue estimate of H.
    pub lambda_max: Option<f64>,
    /// Smallest nonzero eigenvalue estimate of H (μ).
    pub mu: Option<f64>,
    /// Where the products came from; `exact == false` marks finite differences.
    pub derivatives: DerivativeKind,
    /// `true` for analytic or dual-number products.
    pub exact: bool,
}

/// Most vector entries a sketch may hold (`2 · columns · d`, the test vectors and their images):
/// 5·10⁷ (400 MB of f64). Beyond it the column limit is lowered and the sketch reports itself
/// unresolved instead of exhausting memory.
pub const SKETCH_MAX_ENTRIES: usize = 50_000_000;

/// A randomised Nyström sketch of a symmetric H with, where asked for, an orthonormal basis of its
/// numerical range (see [`range_sketch`]).
#[derive(Clone, Debug)]
pub struct RangeSketch<V> {
    /// Summary (rank, λ_max, μ, columns, resolved).
    pub summary: SpectralSketch,
    /// Orthonormal eigenvectors of the sketch with eigenvalue above `null_rtol · λ_max`
    /// (`summary.rank` of them; empty unless the basis was asked for).
    pub basis: Vec<V>,
    /// Their eigenvalues (ascending, as `basis`).
    pub eigenvalues: Vec<f64>,
    /// The smallest Rayleigh quotient seen on the test space, `λ_min(ΩᵀHΩ)`: a significantly
    /// negative value proves that H is indefinite (y is not a local minimiser of g).
    pub min_rayleigh: f64,
    /// A unit vector of the test space attaining `min_rayleigh`, when it is negative relative to
    /// λ_max (a direction of negative curvature of g).
    pub negative_direction: Option<V>,
}

/// Estimate `rank H`, `λ_max` and μ with a randomised Nyström sketch `Ĥ = Y (ΩᵀY)^† Yᵀ`,
/// `Y = H Ω`, Ω with orthonormal Gaussian columns; the column count doubles (16, 32, …) until at
/// least 4 sketch directions are numerically null or `s = d`. With `s > rank H` the sketch is exact
/// in exact arithmetic (Halko, Martinsson & Tropp 2011; Tropp et al. 2017). Every threshold is
/// relative to the sketch's own λ_max, so the decisions do not depend on the scale of H.
pub fn spectral_sketch<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    like: &V,
    null_rtol: f64,
    max_columns: usize,
    seed: u64,
) -> Result<SpectralSketch, DenseError> {
    Ok(range_sketch(op, like, null_rtol, max_columns, seed, false)?.summary)
}

/// [`spectral_sketch`], also returning (with `want_basis`) the orthonormal eigenvectors
/// `z_i = Y U Λ^{-1/2} w_i / √σ_i` of `Ĥ = B Bᵀ`, `B = Y U Λ^{-1/2}` (`ΩᵀY = U Λ Uᵀ`,
/// `BᵀB = W Σ Wᵀ`), whose eigenvalues exceed `null_rtol · λ_max`: a basis of the normal space
/// `range H` of the solution manifold, so that `P_T u = u − Σ ⟨z_i, u⟩ z_i` projects on the
/// tangent space `ker H`. A negative eigenvalue of `ΩᵀHΩ` is reported as indefiniteness.
pub fn range_sketch<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    like: &V,
    null_rtol: f64,
    max_columns: usize,
    seed: u64,
    want_basis: bool,
) -> Result<RangeSketch<V>, DenseError> {
    let d = like.dim();
    let memory_cap = (SKETCH_MAX_ENTRIES / (2 * d.max(1))).max(1);
    let max_s = max_columns.min(d).min(memory_cap).max(1);
    let mut rng = Rng::new(seed);
    let mut omegas: Vec<V> = Vec::new();
    let mut ys: Vec<V> = Vec::new();
    let mut s = 16.min(max_s);
    loop {
        while omegas.len() < s {
            let mut w = like.zeros_like();
            w.fill_with(&mut || rng.normal());
            for _ in 0..2 {
                for q in &omegas {
                    let c = q.dot(&w);
                    w.axpy(-c, q);
                }
            }
            let n = w.norm();
            w.scale(1.0 / n);
            let mut y = like.zeros_like();
            op.apply(&w, &mut y);
            omegas.push(w);
            ys.push(y);
        }
        let mut c = vec![0.0; s * s];
        let mut g = vec![0.0; s * s];
        for i in 0..s {
            for j in 0..=i {
                let cij = 0.5 * (omegas[i].dot(&ys[j]) + omegas[j].dot(&ys[i]));
                c[i * s + j] = cij;
                c[j * s + i] = cij;
                let gij = ys[i].dot(&ys[j]);
                g[i * s + j] = gij;
                g[j * s + i] = gij;
            }
        }
        let ce = sym_eig(&c, s)?;
        let cabs = ce.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let cmax = ce.values.last().copied().unwrap_or(0.0).max(0.0);
        let keep: Vec<usize> = (0..s).filter(|&i| ce.values[i] > 1e-11 * cmax).collect();
        let r = keep.len();
        // M = Λ^{-1/2} Uᵀ G U Λ^{-1/2} on the kept eigenpairs.
        let mut gu = vec![0.0; s * r];
        for (b, &kb) in keep.iter().enumerate() {
            let ub = ce.vector(kb);
            for a in 0..s {
                gu[a * r + b] = crate::vector::dot(&g[a * s..(a + 1) * s], ub);
            }
        }
        let mut m = vec![0.0; r * r];
        for (a, &ka) in keep.iter().enumerate() {
            let ua = ce.vector(ka);
            for b in 0..r {
                let v: f64 = (0..s).map(|t| ua[t] * gu[t * r + b]).sum();
                m[a * r + b] = v / (ce.values[ka] * ce.values[keep[b]]).sqrt();
            }
        }
        for a in 0..r {
            for b in 0..a {
                let v = 0.5 * (m[a * r + b] + m[b * r + a]);
                m[a * r + b] = v;
                m[b * r + a] = v;
            }
        }
        let me = sym_eig(&m, r)?;
        let lambda_max = me.values.last().copied().unwrap_or(0.0).max(0.0);
        let tau = null_rtol * lambda_max;
        let rank = me.values.iter().filter(|&&l| l > tau).count();
        let mu = me.values.iter().copied().find(|&l| l > tau);
        let resolved = rank + 4 <= s || s == d;
        if resolved || s >= max_s {
            let min_rayleigh = ce.values.first().copied().unwrap_or(0.0);
            let negative_direction =
                (min_rayleigh < -null_rtol * cabs.max(lambda_max)).then(|| {
                    let u = ce.vector(0);
                    let mut z = like.zeros_like();
                    for (t, om) in omegas.iter().enumerate() {
                        z.axpy(u[t], om);
                    }
                    let n = z.norm();
                    z.scale(1.0 / n);
                    z
                });
            let mut basis: Vec<V> = Vec::new();
            let mut eigenvalues = Vec::new();
            if want_basis {
                for i in (0..r).filter(|&i| me.values[i] > tau) {
                    let sigma = me.values[i];
                    let wv = me.vector(i);
                    let mut z = like.zeros_like();
                    for (t, yt) in ys.iter().enumerate() {
                        // coefficient of Y_t: Σ_a U_{t,a} λ_a^{-1/2} W_{a,i} / √σ_i
                        let coef: f64 = keep
                            .iter()
                            .enumerate()
                            .map(|(a, &ka)| ce.vector(ka)[t] * wv[a] / ce.values[ka].sqrt())
                            .sum::<f64>()
                            / sigma.sqrt();
                        z.axpy(coef, yt);
                    }
                    // Re-orthonormalise against the previous basis vectors (two passes).
                    for _ in 0..2 {
                        for q in &basis {
                            let c = q.dot(&z);
                            z.axpy(-c, q);
                        }
                    }
                    let n = z.norm();
                    if n > 0.0 && n.is_finite() {
                        z.scale(1.0 / n);
                        basis.push(z);
                        eigenvalues.push(sigma);
                    }
                }
            }
            return Ok(RangeSketch {
                summary: SpectralSketch {
                    rank,
                    intrinsic_dimension: d - rank,
                    lambda_max,
                    mu,
                    columns: s,
                    resolved: resolved || rank < s,
                },
                basis,
                eigenvalues,
                min_rayleigh,
                negative_direction,
            });
        }
        s = (2 * s).min(max_s);
    }
}

/// Reusable workspace computing `∇_x f − J (H + γI)^† ∇_y f`; allocation happens once in
/// [`HypergradientSolver::new`].
pub struct HypergradientSolver<Y: Vector> {
    gx: Vec<f64>,
    jv: Vec<f64>,
    b: Y,
    v: Y,
    cg: CgWorkspace<Y>,
    minres: MinresWorkspace<Y>,
    neumann: NeumannWorkspace<Y>,
    lanczos: LanczosWorkspace<Y>,
}

impl<Y: Vector> HypergradientSolver<Y> {
    /// Workspace for problems shaped like `p`.
    pub fn new<P: Bilevel<Y = Y> + ?Sized>(p: &P) -> Self {
        let z = p.zeros_y();
        HypergradientSolver {
            gx: vec![0.0; p.dim_x()],
            jv: vec![0.0; p.dim_x()],
            cg: CgWorkspace::new(&z),
            minres: MinresWorkspace::new(&z),
            neumann: NeumannWorkspace::new(&z),
            lanczos: LanczosWorkspace::new(&z),
            b: z.clone(),
            v: z,
        }
    }

    /// The last solution `v ≈ (H + γI)^† ∇_y f`.
    pub fn v(&self) -> &Y {
        &self.v
    }

    /// Replace the stored solution (the next warm-started solve starts from `v`): used to
    /// restore a warm start from a checkpoint.
    pub fn set_v(&mut self, v: &Y) {
        self.v.assign(v);
    }

    /// The last right-hand side `∇_y f`.
    pub fn rhs(&self) -> &Y {
        &self.b
    }

    /// Solve `(H + γI) v = b` for the given `b` at `(x, y)` with the configured solver.
    pub fn solve<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &Y,
        opts: &HypergradOptions,
    ) -> KrylovInfo {
        let kopts = KrylovOptions {
            max_iter: opts.max_iter,
            rtol: opts.rtol,
            shift: opts.shift,
            ..KrylovOptions::default()
        };
        let mut op = |u: &Y, out: &mut Y| p.hvp(x, y, u, out);
        match opts.solver {
            LinearSolverKind::Cg => {
                if !opts.warm_start {
                    self.v.set_zero();
                }
                cg(&mut op, &self.b, &mut self.v, &kopts, &mut self.cg)
            }
            LinearSolverKind::Minres => {
                minres(&mut op, &self.b, &mut self.v, &kopts, &mut self.minres)
            }
            LinearSolverKind::Neumann => neumann(
                &mut op,
                &self.b,
                &mut self.v,
                opts.neumann_eta,
                &kopts,
                &mut self.neumann,
            ),
        }
    }

    /// `h = ∇_x f(x, y) − J(x, y) v`, `v ≈ (H + γI)^† ∇_y f(x, y)`, written into `h`.
    ///
    /// `with_diagnostics` selects whether this call computes the configured diagnostics (a solver
    /// may compute them only every few iterations).
    pub fn compute<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &Y,
        opts: &HypergradOptions,
        with_diagnostics: bool,
        h: &mut [f64],
    ) -> Result<HypergradDiagnostics, DenseError> {
        p.grad_f(x, y, &mut self.gx, &mut self.b);
        let info = self.solve(p, x, y, opts);
        p.cross(x, y, &self.v, &mut self.jv);
        for ((hi, gi), ji) in h.iter_mut().zip(&self.gx).zip(&self.jv) {
            *hi = gi - ji;
        }
        let rhs_norm = self.b.norm();
        let mut diag = HypergradDiagnostics {
            solver: opts.solver,
            krylov_iterations: info.iterations,
            relative_residual: info.relative_residual,
            status: info.status,
            rhs_norm,
            kernel_component: None,
            kernel_component_relative: None,
            intrinsic_dimension: None,
            sketch_unresolved: false,
            lambda_max: None,
            mu: None,
            derivatives: p.derivatives(),
            exact: p.derivatives().is_exact(),
        };
        // Diagnostics of a non-finite point would only fail inside an eigen-computation; the
        // caller reports the non-finite quantity itself.
        if with_diagnostics && y.is_finite() && self.b.is_finite() {
            self.diagnose(p, x, y, &opts.diagnostics, h, &mut diag)?;
        }
        Ok(diag)
    }

    /// Fill the kernel-component and spectral fields of `diag` for the current `b = ∇_y f` and
    /// the hypergradient `h` computed from it.
    pub fn diagnose<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &Y,
        opts: &DiagnosticsOptions,
        h: &[f64],
        diag: &mut HypergradDiagnostics,
    ) -> Result<(), DenseError> {
        self.diagnose_with_sketch(p, x, y, opts, None, h, diag)
    }

    /// [`HypergradientSolver::diagnose`], reusing a sketch of H already taken at `(x, y)` with
    /// the same `null_rtol` (HG-MS's second-order check computes one) instead of a new one.
    #[allow(clippy::too_many_arguments)]
    pub fn diagnose_with_sketch<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &Y,
        opts: &DiagnosticsOptions,
        known: Option<&SpectralSketch>,
        h: &[f64],
        diag: &mut HypergradDiagnostics,
    ) -> Result<(), DenseError> {
        p.diagnostic(|| -> Result<(), DenseError> {
            let mut op = |u: &Y, out: &mut Y| p.hvp(x, y, u, out);
            let mut lambda_max = None;
            if opts.intrinsic_dimension {
                let sk = match known {
                    Some(k) => *k,
                    None => spectral_sketch(
                        &mut op,
                        &self.b,
                        opts.null_rtol,
                        opts.sketch_max_columns,
                        opts.sketch_seed,
                    )?,
                };
                diag.sketch_unresolved = !sk.resolved;
                // An unresolved sketch only bounds k from above: report nothing rather than a
                // wrong number (hyper-cleaning, d = 7850, used to report k = 7328 for a strongly
                // convex lower level).
                diag.intrinsic_dimension = sk.resolved.then_some(sk.intrinsic_dimension);
                diag.lambda_max = Some(sk.lambda_max);
                diag.mu = sk.mu;
                lambda_max = Some(sk.lambda_max);
            }
            if opts.kernel_component {
                let res = lanczos(
                    &mut op,
                    &self.b,
                    &LanczosOptions {
                        max_iter: opts.lanczos_max_iter.min(self.b.dim()),
                        tol: 1e-10,
                        resolve_start: true,
                    },
                    &mut self.lanczos,
                )?;
                let lmax = lambda_max.unwrap_or(0.0).max(res.lambda_max());
                let tau = opts.null_rtol * lmax;
                let kc = res.start_component_below(tau);
                diag.kernel_component = Some(kc);
                let scale = diag.rhs_norm.max(crate::vector::norm(h));
                diag.kernel_component_relative = Some(if scale > 0.0 { kc / scale } else { 0.0 });
                if diag.lambda_max.is_none() {
                    diag.lambda_max = Some(lmax);
                    diag.mu = res.smallest_above(tau);
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krylov::testutil::{matvec, psd_with_null};

    /// The sketch's basis is orthonormal and spans range H: `I − Σ z zᵀ` is the dense null-space
    /// projector; an indefinite H yields a direction of negative curvature.
    #[test]
    fn range_basis_spans_the_range_and_indefiniteness_is_seen() {
        let mut rng = Rng::new(4);
        for (d, null_dim) in [(30, 10), (12, 1), (64, 40)] {
            let (a, _, _) = psd_with_null(d, null_dim, 0.01, 5.0, &mut rng);
            let like = vec![0.0; d];
            let sk = range_sketch(
                &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
                &like,
                1e-6,
                512,
                3,
                true,
            )
            .unwrap();
            assert_eq!(sk.basis.len(), d - null_dim);
            assert!(sk.negative_direction.is_none());
            let e = sym_eig(&a, d).unwrap();
            let mut u = vec![0.0; d];
            rng.fill_normal(&mut u);
            let mut t = u.clone();
            crate::manifold::project_tangent(&sk.basis, &mut t);
            let mut dense = vec![0.0; d];
            for i in 0..d {
                if e.values[i].abs() <= 1e-9 {
                    let z = e.vector(i);
                    crate::vector::axpy(&mut dense, crate::vector::dot(z, &u), z);
                }
            }
            assert!(crate::derivatives::relative_error(&t, &dense, 1e-12) < 1e-8);
        }
        // H = diag(2, 1, −1): indefinite.
        let a = [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        let sk = range_sketch(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &vec![0.0; 3],
            1e-6,
            512,
            3,
            true,
        )
        .unwrap();
        let z = sk.negative_direction.expect("indefinite");
        let mut hz = vec![0.0; 3];
        matvec(&a, &z, &mut hz);
        assert!(crate::vector::dot(&z, &hz) < -0.5, "{z:?}");
        assert!((sk.min_rayleigh + 1.0).abs() < 1e-12);
    }

    #[test]
    fn sketch_counts_null_space_exactly() {
        let mut rng = Rng::new(9);
        for (d, null_dim) in [(50, 1), (80, 40), (120, 7), (40, 0)] {
            let (a, _, _) = psd_with_null(d, null_dim, 0.05, 2.0, &mut rng);
            let like = vec![0.0; d];
            let sk = spectral_sketch(
                &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
                &like,
                1e-6,
                512,
                1,
            )
            .unwrap();
            assert!(sk.resolved);
            assert_eq!(sk.intrinsic_dimension, null_dim, "d {d}");
            assert!((sk.lambda_max - 2.0).abs() < 1e-8, "{sk:?}");
            assert!((sk.mu.unwrap() - 0.05).abs() < 1e-8, "{sk:?}");
        }
    }
}
