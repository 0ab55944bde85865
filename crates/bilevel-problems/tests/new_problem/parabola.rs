//! `parabola`: `g(x, y) = ½(y − a x)²`, `f(x, y) = ½(y − 1)²` with `x, y ∈ R`, so
//! `S(x) = {a x}`, `φ(x) = ½(a x − 1)²`, `∇φ(x) = a(a x − 1)` and `x* = 1/a`. It exists to show
//! what adding a problem takes: this file and one registry row (`tests/new_problem/check.sh`).

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_positive, ProblemError};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};

/// The parabola problem with slope `a > 0`.
pub struct Parabola {
    a: f64,
}

impl GenericLowerGradient for Parabola {
    /// `∇_y g = y − a x`.
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        out[0] = y[0] - T::from(self.a) * x[0];
    }
    /// `∇_x g = −a (y − a x)`.
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        out[0] = -T::from(self.a) * (y[0] - T::from(self.a) * x[0]);
    }
}

impl ProblemDef for Parabola {
    fn shape(&self) -> Shape {
        Shape::new("parabola", 1, 1)
    }
    fn f(&self, _x: &[f64], y: &[f64]) -> f64 {
        0.5 * (y[0] - 1.0).powi(2)
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        0.5 * (y[0] - self.a * x[0]).powi(2)
    }
    fn grad_f(&self, _x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = 0.0;
        gy[0] = y[0] - 1.0;
    }
    /// `H = 1`.
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = v[0];
    }
    /// `∇²_xy g = −a`.
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = -self.a * v[0];
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(0.5 * (self.a * x[0] - 1.0).powi(2))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![self.a * (self.a * x[0] - 1.0)])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![self.a * x[0]])
    }
    /// A single lower-level minimiser.
    fn intrinsic_dimension(&self) -> usize {
        0
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(vec![1.0 / self.a])
    }
}

problem_config! {
    /// Parameters of `parabola` ([`Parabola`]).
    ParabolaConfig {
        /// Slope a > 0 (default 2).
        a: f64,
    }
}

impl BuildProblem for ParabolaConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let a = self.a.unwrap_or(2.0);
        check_positive("a", a)?;
        self.finish(Parabola { a }, vec![1.0], vec![0.0])
    }
}
