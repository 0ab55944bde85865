//! Failure case "ties make kinks" (docs/PROBLEMS.md §A): on the unit circle the optimistic selection
//! jumps between two antipodal points, and φ has kinks where the two tie.
//!
//! Both problems use `g(x, y) = ¼(‖y‖² − 1)²`, `y ∈ R²`, `x ∈ R` (g independent of x, so
//! `J = 0`), `S(x)` = the unit circle (`k = 1`), `H v = s v + 2⟨y, v⟩y` with `s = ‖y‖² − 1`.

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::ProblemError;
use crate::shell::{shell_grad, shell_hvp, shell_value};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};

/// `±1` by the sign of `t`, `None` at `t = 0` (a tie).
fn strict_sign(t: f64) -> Option<f64> {
    if t > 0.0 {
        Some(1.0)
    } else if t < 0.0 {
        Some(-1.0)
    } else {
        None
    }
}

/// Lower level of both problems: the unit circle, independent of x.
macro_rules! unit_circle_lower {
    ($ty:ty) => {
        impl GenericLowerGradient for $ty {
            fn grad_g_y_generic<T: Scalar>(&self, _x: &[T], y: &[T], out: &mut [T]) {
                shell_grad(y, None, T::from(1.0), out);
            }
            fn grad_g_x_generic<T: Scalar>(&self, _x: &[T], _y: &[T], out: &mut [T]) {
                out[0] = T::from(0.0);
            }
        }
    };
}

/// `circle-tie`: a concave upper objective on the unit circle whose two minimisers tie at x = 0.
///
/// * `g = ¼(‖y‖² − 1)²`, `S(x)` = unit circle, `k = 1`;
/// * `f(x, y) = −y₁² + x y₁`;
/// * on the circle `f = −t² + x t` with `t = y₁ ∈ [−1, 1]`, minimised at `t = −sign x`:
///   `y*(x) = (−sign x, 0)`, `φ(x) = −1 − |x|`, `∇φ(x) = −sign x`;
/// * at `x = 0` both `(±1, 0)` are optimistic: φ has a kink and `y*`, `∇φ` are undefined.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CircleTie;

unit_circle_lower!(CircleTie);

impl ProblemDef for CircleTie {
    fn shape(&self) -> Shape {
        Shape::new("circle-tie", 1, 2)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        -y[0] * y[0] + x[0] * y[0]
    }
    fn g(&self, _x: &[f64], y: &[f64]) -> f64 {
        shell_value(y, None, 1.0)
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = y[0];
        gy[0] = -2.0 * y[0] + x[0];
        gy[1] = 0.0;
    }
    fn hvp_analytic(&self, _x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, None, 1.0, v, out);
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) {
        out[0] = 0.0;
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        out[0] = -2.0 * v[0];
        out[1] = 0.0;
        true
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(-1.0 - x[0].abs())
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        strict_sign(x[0]).map(|s| vec![-s])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        strict_sign(x[0]).map(|s| vec![-s, 0.0])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
}

/// `circle-sine`: a linear upper objective on the unit circle whose coefficient changes sign at
/// every `kπ`.
///
/// * `g = ¼(‖y‖² − 1)²`, `S(x)` = unit circle, `k = 1`;
/// * `f(x, y) = sin(x) y₁` (that is `⟨(sin x, 0), y⟩`);
/// * `y*(x) = (−sign(sin x), 0)`, `φ(x) = −|sin x|`, `∇φ(x) = −sign(sin x) cos x`;
/// * kinks where `sin x = 0` (every point of the circle is optimistic there): `y*` and `∇φ` are
///   `None` when `sin x` evaluates to exactly 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CircleSine;

unit_circle_lower!(CircleSine);

impl ProblemDef for CircleSine {
    fn shape(&self) -> Shape {
        Shape::new("circle-sine", 1, 2)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        x[0].sin() * y[0]
    }
    fn g(&self, _x: &[f64], y: &[f64]) -> f64 {
        shell_value(y, None, 1.0)
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = x[0].cos() * y[0];
        gy[0] = x[0].sin();
        gy[1] = 0.0;
    }
    fn hvp_analytic(&self, _x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, None, 1.0, v, out);
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) {
        out[0] = 0.0;
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) -> bool {
        out[0] = 0.0;
        out[1] = 0.0;
        true
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(-x[0].sin().abs())
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        strict_sign(x[0].sin()).map(|s| vec![-s * x[0].cos()])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        strict_sign(x[0].sin()).map(|s| vec![-s, 0.0])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
}

problem_config! {
    /// Parameters of `circle-tie` ([`CircleTie`]); only the common keys.
    CircleTieConfig {}
}

impl BuildProblem for CircleTieConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        self.finish(CircleTie, vec![0.5], vec![0.6, 0.8])
    }
}

problem_config! {
    /// Parameters of `circle-sine` ([`CircleSine`]); only the common keys.
    CircleSineConfig {}
}

impl BuildProblem for CircleSineConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        self.finish(CircleSine, vec![1.0], vec![0.6, 0.8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_gradients, check_products, check_pseudoinverse, check_references};

    #[test]
    fn circle_tie_products_gradients_references() {
        let p = CircleTie;
        check_products(&p, 30, 8, 1.0);
        check_gradients(&p, 31, 8, 1.0);
        for x in [0.5, -0.5, 2.0, -1e-3] {
            check_references(&p, &[x]);
            check_pseudoinverse(&p, &[x]);
        }
    }

    #[test]
    fn circle_tie_kink_at_zero() {
        let p = CircleTie;
        assert_eq!(p.reference_phi(&[0.5]), Some(-1.5));
        assert_eq!(p.reference_phi(&[-0.5]), Some(-1.5));
        assert_eq!(p.reference_grad_phi(&[0.5]), Some(vec![-1.0]));
        assert_eq!(p.reference_grad_phi(&[-0.5]), Some(vec![1.0]));
        assert_eq!(p.reference_y(&[0.5]), Some(vec![-1.0, 0.0]));
        assert_eq!(p.reference_y(&[-0.5]), Some(vec![1.0, 0.0]));
        assert_eq!(p.reference_grad_phi(&[0.0]), None);
        assert_eq!(p.reference_y(&[0.0]), None);
        assert_eq!(p.reference_phi(&[0.0]), Some(-1.0));
        // Both tied points attain φ(0).
        assert_eq!(p.f(&[0.0], &[1.0, 0.0]), -1.0);
        assert_eq!(p.f(&[0.0], &[-1.0, 0.0]), -1.0);
        // The selection is optimal over a fine sampling of the circle.
        for x in [-0.7, 0.3] {
            let phi = p.reference_phi(&[x]).unwrap();
            for i in 0..3600 {
                let t = i as f64 * std::f64::consts::TAU / 3600.0;
                assert!(p.f(&[x], &[t.cos(), t.sin()]) >= phi - 1e-15);
            }
        }
    }

    #[test]
    fn circle_sine_products_gradients_references() {
        let p = CircleSine;
        check_products(&p, 40, 8, 2.0);
        check_gradients(&p, 41, 8, 2.0);
        for x in [1.0, -2.0, 4.0, 0.1] {
            check_references(&p, &[x]);
            check_pseudoinverse(&p, &[x]);
        }
    }

    #[test]
    fn circle_sine_kinks() {
        let p = CircleSine;
        assert_eq!(p.reference_grad_phi(&[0.0]), None);
        assert_eq!(p.reference_y(&[0.0]), None);
        assert_eq!(p.reference_phi(&[0.0]), Some(0.0));
        let g = p.reference_grad_phi(&[1.0]).unwrap()[0];
        assert!((g + 1.0f64.cos()).abs() < 1e-15);
        let g = p.reference_grad_phi(&[4.0]).unwrap()[0];
        assert!((g - 4.0f64.cos()).abs() < 1e-15, "sin 4 < 0 so ∇φ = cos 4");
        // One-sided slopes at π differ: −|sin| has slopes +1 on the left (cos → −1 times −1)
        // and −1 on the right.
        let pi = std::f64::consts::PI;
        let left = p.reference_grad_phi(&[pi - 1e-6]).unwrap()[0];
        let right = p.reference_grad_phi(&[pi + 1e-6]).unwrap()[0];
        assert!((left - 1.0).abs() < 1e-9 && (right + 1.0).abs() < 1e-9);
    }
}
