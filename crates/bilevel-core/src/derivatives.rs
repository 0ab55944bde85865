//! Derivative sources other than hand-written products: exact forward-mode dual numbers over a
//! generically written gradient, and a (labelled, approximate) central finite-difference fallback.
//!
//! With a gradient written once over a scalar type `T`, the products are directional derivatives
//! of that gradient along `(0, v)`:
//!
//! * `H v = d/dε ∇_y g(x, y + ε v)|₀`
//! * `J v = d/dε ∇_x g(x, y + ε v)|₀` (since `(J v)_i = Σ_j ∂²g/∂x_i∂y_j v_j`)
//!
//! Evaluating the gradient on `Dual64` numbers `y_j + v_j ε` gives both exactly (to rounding).
//! One order higher, hyper-dual numbers `y_j + w_j ε₁ + v_j ε₂` give the third derivative of g
//! contracted with two directions, `D_w[H] v = ∂²/∂ε₁∂ε₂ ∇_y g(x, y + ε₁ w + ε₂ v)`, exactly
//! ([`hyperdual_hvp_derivative`]; used by the second-order check of the selection).

use num_dual::{Dual64, DualNum, HyperDual64};
use std::cell::RefCell;

/// A real scalar that gradients can be written over: `f64` or a dual number over `f64`.
pub trait Scalar: DualNum<Primitive = f64> + Copy {}
impl<T: DualNum<Primitive = f64> + Copy> Scalar for T {}

/// A lower-level gradient written once, generically over the scalar type.
pub trait GenericLowerGradient {
    /// `∇_y g(x, y)` into `out` (length d).
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]);
    /// `∇_x g(x, y)` into `out` (length m).
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]);
}

thread_local! {
    static SCRATCH: RefCell<[Vec<Dual64>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Run `f` with dual-number buffers `x + 0ε`, `y + vε` and an output buffer of length `out_len`.
/// Buffers are thread-local and reused, so repeated calls do not allocate.
fn with_dual_buffers<R>(
    x: &[f64],
    y: &[f64],
    v: &[f64],
    out_len: usize,
    f: impl FnOnce(&[Dual64], &[Dual64], &mut [Dual64]) -> R,
) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let [xd, yd, od] = &mut *s;
        xd.clear();
        xd.extend(x.iter().map(|&xi| Dual64::new(xi, 0.0)));
        yd.clear();
        yd.extend(y.iter().zip(v).map(|(&yi, &vi)| Dual64::new(yi, vi)));
        od.clear();
        od.resize(out_len, Dual64::new(0.0, 0.0));
        f(xd, yd, od)
    })
}

/// Exact `H v` by forward-mode dual numbers over `∇_y g`.
pub fn dual_hvp<P: GenericLowerGradient + ?Sized>(
    p: &P,
    x: &[f64],
    y: &[f64],
    v: &[f64],
    out: &mut [f64],
) {
    with_dual_buffers(x, y, v, out.len(), |xd, yd, od| {
        p.grad_g_y_generic(xd, yd, od);
        out.iter_mut().zip(od.iter()).for_each(|(o, d)| *o = d.eps);
    })
}

/// Exact `J v` (length m) by forward-mode dual numbers over `∇_x g`.
pub fn dual_cross<P: GenericLowerGradient + ?Sized>(
    p: &P,
    x: &[f64],
    y: &[f64],
    v: &[f64],
    out: &mut [f64],
) {
    with_dual_buffers(x, y, v, out.len(), |xd, yd, od| {
        p.grad_g_x_generic(xd, yd, od);
        out.iter_mut().zip(od.iter()).for_each(|(o, d)| *o = d.eps);
    })
}

thread_local! {
    static HYPER_SCRATCH: RefCell<[Vec<HyperDual64>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Exact `D_w[H] v = d/dε [∇²_yy g(x, y + ε w) v]|₀` by hyper-dual numbers over `∇_y g`: the
/// gradient is evaluated at `y + w ε₁ + v ε₂` and the `ε₁ε₂` part is read off. Buffers are
/// thread-local and reused (no allocation after the first call).
pub fn hyperdual_hvp_derivative<P: GenericLowerGradient + ?Sized>(
    p: &P,
    x: &[f64],
    y: &[f64],
    w: &[f64],
    v: &[f64],
    out: &mut [f64],
) {
    HYPER_SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let [xd, yd, od] = &mut *s;
        xd.clear();
        xd.extend(x.iter().map(|&xi| HyperDual64::new(xi, 0.0, 0.0, 0.0)));
        yd.clear();
        yd.extend(
            y.iter()
                .zip(w.iter().zip(v))
                .map(|(&yi, (&wi, &vi))| HyperDual64::new(yi, wi, vi, 0.0)),
        );
        od.clear();
        od.resize(out.len(), HyperDual64::new(0.0, 0.0, 0.0, 0.0));
        p.grad_g_y_generic(xd, yd, od);
        out.iter_mut()
            .zip(od.iter())
            .for_each(|(o, d)| *o = d.eps1eps2);
    })
}

/// Default relative step of the finite-difference fallback: `ε³ᐟ³`-optimal for central
/// differences is `≈ 6e-6` for unit-scale problems (truncation `O(h²)` vs rounding `O(u/h)`).
pub const DEFAULT_FD_EPS: f64 = 6e-6;

/// Step `h = eps · (1 + ‖y‖) / ‖v‖` used along direction `v` from `y`.
fn fd_step(eps: f64, y: &[f64], v: &[f64]) -> Option<f64> {
    let nv = crate::vector::norm(v);
    if nv == 0.0 {
        return None;
    }
    Some(eps * (1.0 + crate::vector::norm(y)) / nv)
}

/// Central difference of a vector-valued map `G(y)` along `v`:
/// `(G(y + h v) − G(y − h v)) / (2h)`. **Approximate** (`O(h²)` truncation error).
///
/// `work` must have the length of `y`; `tmp` the length of `out`.
pub fn fd_directional(
    mut grad: impl FnMut(&[f64], &mut [f64]),
    y: &[f64],
    v: &[f64],
    eps: f64,
    work: &mut [f64],
    tmp: &mut [f64],
    out: &mut [f64],
) {
    let Some(h) = fd_step(eps, y, v) else {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    };
    work.iter_mut()
        .zip(y.iter().zip(v))
        .for_each(|(w, (&yi, &vi))| *w = yi + h * vi);
    grad(work, out);
    work.iter_mut()
        .zip(y.iter().zip(v))
        .for_each(|(w, (&yi, &vi))| *w = yi - h * vi);
    grad(work, tmp);
    let inv = 1.0 / (2.0 * h);
    out.iter_mut()
        .zip(tmp.iter())
        .for_each(|(o, &t)| *o = (*o - t) * inv);
}

/// Central finite-difference gradient of a scalar function, `∂_i F ≈ (F(z + h e_i) − F(z − h e_i))/2h`
/// with `h = eps · max(1, |z_i|)`. Used to check gradients and closed-form `∇φ` in tests and in
/// `bilevel hypergrad`.
pub fn fd_gradient(mut f: impl FnMut(&[f64]) -> f64, z: &[f64], eps: f64) -> Vec<f64> {
    let mut w = z.to_vec();
    (0..z.len())
        .map(|i| {
            let h = eps * z[i].abs().max(1.0);
            w[i] = z[i] + h;
            let fp = f(&w);
            w[i] = z[i] - h;
            let fm = f(&w);
            w[i] = z[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

/// Relative error `‖a − b‖ / max(‖b‖, floor)`.
pub fn relative_error(a: &[f64], b: &[f64], floor: f64) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    diff / crate::vector::norm(b).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// g(x, y) = exp(x₀ y₀) + x₁ y₀ y₁² + sin(y₁): gradients written generically.
    struct G;
    impl GenericLowerGradient for G {
        fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
            out[0] = x[0] * (x[0] * y[0]).exp() + x[1] * y[1] * y[1];
            out[1] = x[1] * y[0] * y[1] * 2.0 + y[1].cos();
        }
        fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
            out[0] = y[0] * (x[0] * y[0]).exp();
            out[1] = y[0] * y[1] * y[1];
        }
    }

    #[test]
    fn dual_products_match_hand_derivatives() {
        let (x, y, v) = ([0.3, -1.2], [0.7, 0.4], [1.5, -0.5]);
        let e = (x[0] * y[0]).exp();
        // H = [[x0² e, 2 x1 y1], [2 x1 y1, 2 x1 y0 − sin y1]]
        let h = [
            [x[0] * x[0] * e, 2.0 * x[1] * y[1]],
            [2.0 * x[1] * y[1], 2.0 * x[1] * y[0] - y[1].sin()],
        ];
        // J (rows x) = [[e + x0 y0 e, 0], [y1², 2 y0 y1]]
        let j = [[e + x[0] * y[0] * e, 0.0], [y[1] * y[1], 2.0 * y[0] * y[1]]];
        let mut hv = [0.0; 2];
        let mut jv = [0.0; 2];
        dual_hvp(&G, &x, &y, &v, &mut hv);
        dual_cross(&G, &x, &y, &v, &mut jv);
        for i in 0..2 {
            let ehv = h[i][0] * v[0] + h[i][1] * v[1];
            let ejv = j[i][0] * v[0] + j[i][1] * v[1];
            assert!((hv[i] - ehv).abs() < 1e-14 * (1.0 + ehv.abs()), "{hv:?}");
            assert!((jv[i] - ejv).abs() < 1e-14 * (1.0 + ejv.abs()), "{jv:?}");
        }
        // The finite-difference fallback agrees to O(h²) ≈ 1e-9 here.
        let (mut w, mut t, mut out) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        fd_directional(
            |yy, o| G.grad_g_y_generic(&x, yy, o),
            &y,
            &v,
            DEFAULT_FD_EPS,
            &mut w,
            &mut t,
            &mut out,
        );
        assert!(relative_error(&out, &hv, 1e-12) < 1e-8);
    }

    /// `D_w[H] v` by hyper-dual numbers against the hand-written third derivatives of G:
    /// ∂H₀₀/∂y₀ = x₀³e, ∂H₀₁/∂y₁ = 2x₁, ∂H₁₁/∂y₀ = 2x₁, ∂H₁₁/∂y₁ = −cos y₁ (others 0).
    #[test]
    fn hyperdual_third_derivative_matches_hand_derivatives() {
        let (x, y, w, v) = ([0.3, -1.2], [0.7, 0.4], [0.2, 1.1], [1.5, -0.5]);
        let e = (x[0] * y[0]).exp();
        // dH/dε along w: [[x0³ e w0, 2 x1 w1], [2 x1 w1, 2 x1 w0 − cos(y1) w1]]
        let dh = [
            [x[0].powi(3) * e * w[0], 2.0 * x[1] * w[1]],
            [2.0 * x[1] * w[1], 2.0 * x[1] * w[0] - y[1].cos() * w[1]],
        ];
        let mut out = [0.0; 2];
        hyperdual_hvp_derivative(&G, &x, &y, &w, &v, &mut out);
        for i in 0..2 {
            let want = dh[i][0] * v[0] + dh[i][1] * v[1];
            assert!(
                (out[i] - want).abs() < 1e-14 * (1.0 + want.abs()),
                "{out:?}"
            );
        }
    }

    #[test]
    fn fd_gradient_of_quadratic_is_exact_to_rounding() {
        let g = fd_gradient(|z| z[0] * z[0] + 3.0 * z[0] * z[1], &[1.0, 2.0], 1e-5);
        assert!((g[0] - 8.0).abs() < 1e-8 && (g[1] - 3.0).abs() < 1e-8);
    }
}
