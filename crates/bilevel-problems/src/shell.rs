//! The "shell" lower level shared by the circle and sphere problems:
//! `g = ¼ s²`, `s = ‖y − c‖² − ρ²`, whose solution set is the sphere of radius ρ about c.
//!
//! With `u = y − c`: `∇_y g = s u` and `H = s I + 2 u uᵀ`. On the sphere (`s = 0`) `H = 2 u uᵀ` has
//! rank one, so the solution set has intrinsic dimension `d − 1`, and `g` satisfies a local PL
//! inequality with constant `2ρ²`-ish near it.

use bilevel_core::derivatives::Scalar;

/// `u_i = y_i − c_i` (`c = 0` when `center` is `None`).
#[inline]
fn offset<T: Scalar>(y: &[T], center: Option<&[T]>, i: usize) -> T {
    match center {
        Some(c) => y[i] - c[i],
        None => y[i],
    }
}

/// `s = ‖y − c‖² − ρ²`.
#[inline]
pub(crate) fn shell_residual<T: Scalar>(y: &[T], center: Option<&[T]>, rho2: T) -> T {
    let mut s = -rho2;
    for i in 0..y.len() {
        let u = offset(y, center, i);
        s += u * u;
    }
    s
}

/// `g = ¼ (‖y − c‖² − ρ²)²`.
#[inline]
pub(crate) fn shell_value(y: &[f64], center: Option<&[f64]>, rho2: f64) -> f64 {
    let s = shell_residual(y, center, rho2);
    0.25 * s * s
}

/// `∇_y g = s (y − c)` into `out`.
#[inline]
pub(crate) fn shell_grad<T: Scalar>(y: &[T], center: Option<&[T]>, rho2: T, out: &mut [T]) {
    let s = shell_residual(y, center, rho2);
    for (i, o) in out.iter_mut().enumerate() {
        *o = s * offset(y, center, i);
    }
}

/// `H v = s v + 2 ⟨u, v⟩ u` into `out` (no allocation).
#[inline]
pub(crate) fn shell_hvp(y: &[f64], center: Option<&[f64]>, rho2: f64, v: &[f64], out: &mut [f64]) {
    let s = shell_residual(y, center, rho2);
    let mut uv = 0.0;
    for (i, &vi) in v.iter().enumerate() {
        uv += offset(y, center, i) * vi;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = s * v[i] + 2.0 * uv * offset(y, center, i);
    }
}
