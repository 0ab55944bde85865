//! Second-order conditions of the optimistic selection on the solution manifold.
//!
//! At a point y of `S(x) = {∇_y g = 0}` where `H = ∇²_yy g` has constant rank, the tangent space is
//! `T = ker H` and the normal space `range H`. At a first-order point of `min_{y ∈ S} f` write
//! `∇_y f = H w` with `w = H^† ∇_y f` (the vector the hypergradient solve already computes).
//! Differentiating `∇_y g(y(t)) = 0` twice along a curve of S with `y'(0) = u ∈ T` gives
//! `H y''(0) = −∇³g[u, u]`, so the second derivative of f along the curve is
//!
//! ```text
//! q(u) = uᵀ ∇²_yy f u − ∇³g[u, u, w],        Q u = P_T (∇²_yy f u − D_w[H] u),   u ∈ T,
//! ```
//!
//! the Riemannian Hessian of f restricted to S (`D_w[H] u = d/dε H(y + ε w) u`). The selection is
//! a strict local minimiser on S when `Q ≻ 0` on T; a negative eigenvalue is a direction along S in
//! which f decreases: the point is a maximiser or saddle of f on S, where the kernel-component
//! diagnostic (zero at every critical point) cannot tell. Worked case (circle-radius,
//! `g = ¼(‖y‖² − r²)²`, `f = ⟨a, y⟩`): at `y = s r â`, `q = −s‖a‖/r`, positive at the minimiser
//! `s = −1`, negative at the maximiser.
//!
//! [`tangent_curvature`] finds the smallest eigenvalue of Q by Lanczos on T, with `P_T` from an
//! orthonormal basis of `range H` ([`crate::hypergrad::range_sketch`]). Products come from the
//! problem where it has them exactly ([`Bilevel::hvp_upper`], [`Bilevel::hvp_lower_derivative`]),
//! else from labelled central differences.

use crate::dense::DenseError;
use crate::krylov::{lanczos_in_subspace, ritz_vector, LanczosOptions, LanczosWorkspace};
use crate::oracle::Bilevel;
use crate::rng::Rng;
use crate::vector::Vector;

/// `u ← P_T u = u − Σ ⟨z_i, u⟩ z_i` for an orthonormal basis `z_i` of the normal space (two
/// Gram–Schmidt passes, so the result is orthogonal to the basis to rounding).
pub fn project_tangent<V: Vector>(normal_basis: &[V], u: &mut V) {
    for _ in 0..2 {
        for z in normal_basis {
            let c = z.dot(u);
            u.axpy(-c, z);
        }
    }
}

/// Options of [`tangent_curvature`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvatureOptions {
    /// Lanczos dimension limit on the tangent space.
    pub max_iter: usize,
    /// Seed of the random start vector in T.
    pub seed: u64,
    /// Relative step of the central-difference fallbacks.
    pub fd_eps: f64,
}

impl Default for CurvatureOptions {
    fn default() -> Self {
        CurvatureOptions {
            max_iter: 50,
            seed: 0x7a9e,
            fd_eps: 1e-5,
        }
    }
}

/// The smallest eigenvalue of the Riemannian Hessian Q on the tangent space, and its direction.
#[derive(Clone, Debug)]
pub struct TangentCurvature<V> {
    /// Smallest Ritz value of Q on T (the smallest tangent curvature found).
    pub min: f64,
    /// Scale of Q's two terms, `max ‖∇²f u‖ + ‖D_w[H] u‖` over the unit vectors applied: `min`
    /// is judged relative to it.
    pub scale: f64,
    /// Unit Ritz vector of `min` (a direction along S).
    pub direction: V,
    /// Operator applications (Lanczos steps).
    pub steps: usize,
    /// Dimension of T (`d − rank H`).
    pub tangent_dim: usize,
    /// Whether both products were exact (no finite differences).
    pub exact: bool,
}

impl<V> TangentCurvature<V> {
    /// `min / scale` (0 when the scale is 0).
    pub fn relative(&self) -> f64 {
        if self.scale > 0.0 {
            self.min / self.scale
        } else {
            0.0
        }
    }
}

/// Buffers of [`tangent_curvature`] (allocated once).
pub struct CurvatureWorkspace<V> {
    lanczos: LanczosWorkspace<V>,
    start: V,
    t1: V,
    t2: V,
    a: V,
    b: V,
    gx: Vec<f64>,
}

impl<V: Vector> CurvatureWorkspace<V> {
    /// Workspace for vectors shaped like `like` and an m-dimensional x.
    pub fn new(like: &V, m: usize) -> Self {
        CurvatureWorkspace {
            lanczos: LanczosWorkspace::new(like),
            start: like.zeros_like(),
            t1: like.zeros_like(),
            t2: like.zeros_like(),
            a: like.zeros_like(),
            b: like.zeros_like(),
            gx: vec![0.0; m],
        }
    }
}

/// `out ← (G(y + h v) − G(y − h v)) / 2h` with `h = eps · (1 + ‖y‖) / ‖v‖`: the labelled
/// central-difference fallback of both products below (`a`, `b` are scratch).
fn central_difference<V: Vector>(
    y: &V,
    v: &V,
    eps: f64,
    a: &mut V,
    b: &mut V,
    out: &mut V,
    mut eval: impl FnMut(&V, &mut V),
) {
    let h = eps * (1.0 + y.norm()) / v.norm().max(f64::MIN_POSITIVE);
    a.assign(y);
    a.axpy(h, v);
    eval(a, out);
    a.assign(y);
    a.axpy(-h, v);
    eval(a, b);
    out.axpy(-1.0, b);
    out.scale(0.5 / h);
}

/// `out ← ∇²_yy f u`: exact from the problem, else `(∇_y f(y + h u) − ∇_y f(y − h u)) / 2h`.
/// Returns whether it was exact.
#[allow(clippy::too_many_arguments)]
fn upper_hvp<P: Bilevel + ?Sized>(
    p: &P,
    x: &[f64],
    y: &P::Y,
    u: &P::Y,
    eps: f64,
    gx: &mut [f64],
    a: &mut P::Y,
    b: &mut P::Y,
    out: &mut P::Y,
) -> bool {
    if p.hvp_upper(x, y, u, out) {
        return true;
    }
    central_difference(y, u, eps, a, b, out, |z, o| p.grad_f(x, z, gx, o));
    false
}

/// `out ← D_w[H] u`: exact from the problem ([`Bilevel::hvp_lower_derivative`]), else the
/// central difference `(H(y + h w) u − H(y − h w) u) / 2h`, `h = eps (1 + ‖y‖)/‖w‖`. Returns
/// whether it was exact. `a`, `b` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn lower_hvp_derivative<P: Bilevel + ?Sized>(
    p: &P,
    x: &[f64],
    y: &P::Y,
    w: &P::Y,
    u: &P::Y,
    eps: f64,
    a: &mut P::Y,
    b: &mut P::Y,
    out: &mut P::Y,
) -> bool {
    if p.hvp_lower_derivative(x, y, w, u, out) {
        return true;
    }
    if w.norm() == 0.0 {
        out.set_zero();
        return true;
    }
    central_difference(y, w, eps, a, b, out, |z, o| p.hvp(x, z, u, o));
    false
}

/// The smallest eigenvalue of `Q u = P_T(∇²_yy f u − D_w[H] u)` on `T = (span normal_basis)^⊥`
/// by Lanczos from a random vector of T; `None` when T is trivial (`normal_basis` spans R^d).
/// `w` is `H^† ∇_y f` at y (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub fn tangent_curvature<P: Bilevel + ?Sized>(
    p: &P,
    x: &[f64],
    y: &P::Y,
    w: &P::Y,
    normal_basis: &[P::Y],
    opts: &CurvatureOptions,
    ws: &mut CurvatureWorkspace<P::Y>,
) -> Result<Option<TangentCurvature<P::Y>>, DenseError> {
    let d = y.dim();
    let k = d.saturating_sub(normal_basis.len());
    if k == 0 {
        return Ok(None);
    }
    let mut rng = Rng::new(opts.seed);
    ws.start.fill_with(&mut || rng.normal());
    let n0 = ws.start.norm();
    project_tangent(normal_basis, &mut ws.start);
    if ws.start.norm() <= 1e-8 * n0 {
        return Ok(None);
    }
    let mut scale = 0.0f64;
    let mut exact = true;
    let CurvatureWorkspace {
        lanczos: lz,
        start,
        t1,
        t2,
        a,
        b,
        gx,
    } = ws;
    let res = {
        let mut op = |u: &P::Y, out: &mut P::Y| {
            let e1 = upper_hvp(p, x, y, u, opts.fd_eps, gx, a, b, t1);
            let e2 = lower_hvp_derivative(p, x, y, w, u, opts.fd_eps, a, b, t2);
            exact &= e1 && e2;
            let un = u.norm().max(f64::MIN_POSITIVE);
            scale = scale.max((t1.norm() + t2.norm()) / un);
            out.assign(t1);
            out.axpy(-1.0, t2);
            project_tangent(normal_basis, out);
        };
        lanczos_in_subspace(
            &mut op,
            start,
            &LanczosOptions {
                max_iter: opts.max_iter.min(k).max(1),
                tol: 1e-10,
                resolve_start: false,
            },
            lz,
            &mut |w: &mut P::Y| project_tangent(normal_basis, w),
        )?
    };
    let mut direction = y.zeros_like();
    ritz_vector(&res, lz, 0, &mut direction);
    project_tangent(normal_basis, &mut direction);
    let dn = direction.norm();
    if dn > 0.0 {
        direction.scale(1.0 / dn);
    }
    Ok(Some(TangentCurvature {
        min: res.lambda_min(),
        scale,
        direction,
        steps: res.steps,
        tangent_dim: k,
        exact,
    }))
}
