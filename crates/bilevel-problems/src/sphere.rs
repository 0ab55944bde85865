//! `sphere`: the unit sphere of any dimension as lower-level solution set (docs/PROBLEMS.md §A).

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_range, ProblemError};
use crate::shell::{shell_grad, shell_hvp, shell_value};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::vector::{dot, norm};

/// `sphere`: a linear upper objective over the unit sphere.
///
/// * `g(x, y) = ¼(‖y‖² − 1)²`, `y ∈ R^d`;
/// * `S(x)` = the unit sphere, intrinsic dimension `k = d − 1`;
/// * `f(x, y) = ⟨x, y⟩`, `x ∈ R^d` (so `m = d`);
/// * `y*(x) = −x/‖x‖`, `φ(x) = −‖x‖`, `∇φ(x) = −x/‖x‖`; kink at `x = 0` (every point of the
///   sphere is optimistic there, and φ is not differentiable).
///
/// Products: with `s = ‖y‖² − 1`: `H v = s v + 2⟨y, v⟩y`; g does not depend on x, so `J = 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sphere {
    d: usize,
}

impl Sphere {
    /// Default dimension d.
    pub const DEFAULT_D: usize = 3;

    /// Largest accepted d (solvers hold tens of vectors of dimension d, and sketches more).
    pub const MAX_D: usize = 1_000_000;

    /// The unit sphere in `R^d`, `1 ≤ d ≤ 10⁶`.
    pub fn new(d: usize) -> Result<Self, ProblemError> {
        check_range("d", d, 1..=Self::MAX_D, "in")?;
        Ok(Sphere { d })
    }
    /// Default upper start: the pattern `1, 2, −0.5` repeated to length d (nonzero).
    pub fn default_x0(d: usize) -> Vec<f64> {
        const PATTERN: [f64; 3] = [1.0, 2.0, -0.5];
        (0..d).map(|i| PATTERN[i % 3]).collect()
    }
    /// Default lower start: `e₁`.
    pub fn default_y0(d: usize) -> Vec<f64> {
        let mut y = vec![0.0; d];
        if let Some(y0) = y.first_mut() {
            *y0 = 1.0;
        }
        y
    }
}

impl Default for Sphere {
    fn default() -> Self {
        Sphere { d: Self::DEFAULT_D }
    }
}

impl GenericLowerGradient for Sphere {
    fn grad_g_y_generic<T: Scalar>(&self, _x: &[T], y: &[T], out: &mut [T]) {
        shell_grad(y, None, T::from(1.0), out);
    }
    fn grad_g_x_generic<T: Scalar>(&self, _x: &[T], _y: &[T], out: &mut [T]) {
        out.iter_mut().for_each(|o| *o = T::from(0.0));
    }
}

impl ProblemDef for Sphere {
    fn shape(&self) -> Shape {
        Shape::new("sphere", self.d, self.d)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        dot(x, y)
    }
    fn g(&self, _x: &[f64], y: &[f64]) -> f64 {
        shell_value(y, None, 1.0)
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx.copy_from_slice(y);
        gy.copy_from_slice(x);
    }
    fn hvp_analytic(&self, _x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, None, 1.0, v, out);
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) -> bool {
        out.iter_mut().for_each(|o| *o = 0.0);
        true
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(-norm(x))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.reference_y(x)
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let n = norm(x);
        if n == 0.0 {
            return None;
        }
        Some(x.iter().map(|xi| -xi / n).collect())
    }
    fn intrinsic_dimension(&self) -> usize {
        self.d - 1
    }
}

problem_config! {
    /// Parameters of `sphere` ([`Sphere`]).
    SphereConfig {
        /// Dimension d = m ≥ 1 (default 3).
        d: usize,
    }
}

impl BuildProblem for SphereConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = self.d.unwrap_or(Sphere::DEFAULT_D);
        self.finish(
            Sphere::new(d)?,
            Sphere::default_x0(d),
            Sphere::default_y0(d),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_gradients, check_products, check_pseudoinverse, check_references};

    #[test]
    fn sphere_products_gradients_references() {
        for d in [1, 2, 3, 7] {
            let p = Sphere::new(d).unwrap();
            check_products(&p, 10 + d as u64, 6, 1.0);
            check_gradients(&p, 20 + d as u64, 6, 1.0);
            let x = Sphere::default_x0(d);
            check_references(&p, &x);
            let c = check_pseudoinverse(&p, &x);
            // H = 2 y* y*ᵀ at the selection: eigenvalues 0 (d − 1 times) and 2.
            assert!(
                (c.eigenvalues[d - 1] - 2.0).abs() < 1e-14,
                "{:?}",
                c.eigenvalues
            );
        }
    }

    #[test]
    fn sphere_closed_forms_and_kink_at_zero() {
        let p = Sphere::default();
        let x = [1.0, 2.0, -2.0];
        assert_eq!(p.reference_phi(&x), Some(-3.0));
        let g = p.reference_grad_phi(&x).unwrap();
        assert_eq!(g, vec![-1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(p.reference_y(&x), Some(g));
        assert_eq!(p.reference_phi(&[0.0; 3]), Some(0.0));
        assert_eq!(p.reference_grad_phi(&[0.0; 3]), None);
        assert_eq!(p.reference_y(&[0.0; 3]), None);
        assert_eq!(p.intrinsic_dimension(), 2);
        assert!(Sphere::new(0)
            .unwrap_err()
            .to_string()
            .starts_with("problem.d:"));
        assert_eq!(
            Sphere::new(1_000_000_000_000).unwrap_err().to_string(),
            "problem.d: must be in 1..=1000000 (got 1000000000000)"
        );
        assert_eq!(Sphere::default_x0(5), vec![1.0, 2.0, -0.5, 1.0, 2.0]);
        assert_eq!(Sphere::default_y0(3), vec![1.0, 0.0, 0.0]);
    }
}
