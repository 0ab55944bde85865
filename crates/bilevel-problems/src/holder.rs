//! Failure case "degenerate selection breaks Hölder regularity" (docs/PROBLEMS.md §A).

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_range, ProblemError};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};

/// `holder`: the solution set is the y₁ axis and the upper objective is flat to order 2p at the
/// selection when `x = 0`.
///
/// * `g(x, y) = ½y₂²`, `y ∈ R²`, `x ∈ R`; `S(x) = {y₂ = 0}` (the y₁ axis), `k = 1`;
/// * `f(x, y) = h(y₁) − x y₁` with `h(t) = t^{2p}/(2p)`, integer `p ≥ 1`;
/// * `h'(y₁*) = x` gives `y₁* = sign(x)|x|^{1/(2p−1)}`, `y*(x) = (y₁*, 0)`;
/// * `φ(x) = h(y₁*) − x y₁* = −(1 − 1/(2p))|x|^{2p/(2p−1)}`, `∇φ(x) = −y₁*(x)`;
/// * `∇φ` is Hölder with exponent `1/(2p − 1)` at 0 and no better (Hölder-1/3 for the default
///   `p = 2`; Lipschitz only for `p = 1`): the Riemannian Hessian `h''(y₁*)` vanishes at `x = 0`.
///
/// Products: `H = diag(0, 1)`, `J = 0` (g does not depend on x).
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    p: u32,
}

impl Holder {
    /// Default degeneracy order p.
    pub const DEFAULT_P: u32 = 2;
    /// Largest accepted p (beyond it `t^{2p}` overflows for moderate t).
    pub const MAX_P: u32 = 64;

    /// `h(t) = t^{2p}/(2p)` with `1 ≤ p ≤ 64`.
    pub fn new(p: u32) -> Result<Self, ProblemError> {
        check_range("p", p, 1..=Self::MAX_P, "an integer in")?;
        Ok(Holder { p })
    }
    /// Degeneracy order p.
    pub fn p(&self) -> u32 {
        self.p
    }
    /// The Hölder exponent `1/(2p − 1)` of `∇φ` at 0.
    pub fn holder_exponent(&self) -> f64 {
        1.0 / (2 * self.p - 1) as f64
    }
    /// `y₁*(x) = sign(x)|x|^{1/(2p−1)}`.
    fn y1_star(&self, x: f64) -> f64 {
        x.signum() * x.abs().powf(self.holder_exponent())
    }
    /// `h(t) = t^{2p}/(2p)`.
    fn h(&self, t: f64) -> f64 {
        t.powi(2 * self.p as i32) / (2 * self.p) as f64
    }
}

impl Default for Holder {
    fn default() -> Self {
        Holder { p: Self::DEFAULT_P }
    }
}

impl GenericLowerGradient for Holder {
    fn grad_g_y_generic<T: Scalar>(&self, _x: &[T], y: &[T], out: &mut [T]) {
        out[0] = T::from(0.0);
        out[1] = y[1];
    }
    fn grad_g_x_generic<T: Scalar>(&self, _x: &[T], _y: &[T], out: &mut [T]) {
        out[0] = T::from(0.0);
    }
}

impl ProblemDef for Holder {
    fn shape(&self) -> Shape {
        Shape::new("holder", 1, 2)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        self.h(y[0]) - x[0] * y[0]
    }
    fn g(&self, _x: &[f64], y: &[f64]) -> f64 {
        0.5 * y[1] * y[1]
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = -y[0];
        gy[0] = y[0].powi(2 * self.p as i32 - 1) - x[0];
        gy[1] = 0.0;
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = 0.0;
        out[1] = v[1];
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) {
        out[0] = 0.0;
    }
    /// The degeneracy order `p` (the problem's only parameter).
    fn export_arrays(&self) -> Vec<bilevel_core::NamedArray> {
        vec![bilevel_core::NamedArray::vector("p", vec![self.p as f64])]
    }
    fn hvp_upper_analytic(&self, _x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        let p = self.p as i32;
        out[0] = (2 * p - 1) as f64 * y[0].powi(2 * p - 2) * v[0];
        out[1] = 0.0;
        true
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let t = self.y1_star(x[0]);
        Some(self.h(t) - x[0] * t)
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![-self.y1_star(x[0])])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![self.y1_star(x[0]), 0.0])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
}

problem_config! {
    /// Parameters of `holder` ([`Holder`]).
    HolderConfig {
        /// Degeneracy order p ≥ 1 of `h(t) = t^{2p}/(2p)` (default 2).
        p: u32,
    }
}

impl BuildProblem for HolderConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let p = self.p.unwrap_or(Holder::DEFAULT_P);
        self.finish(Holder::new(p)?, vec![0.5], vec![0.0, 1.0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_gradients, check_products, check_pseudoinverse, check_references};

    #[test]
    fn holder_products_gradients_references() {
        for p in [1, 2, 3] {
            let h = Holder::new(p).unwrap();
            check_products(&h, 50 + p as u64, 6, 1.0);
            check_gradients(&h, 60 + p as u64, 6, 1.0);
            for x in [0.5, -0.3, 2.0] {
                check_references(&h, &[x]);
                check_pseudoinverse(&h, &[x]);
            }
        }
    }

    #[test]
    fn holder_closed_forms_and_exponent() {
        let h = Holder::default();
        assert_eq!(h.holder_exponent(), 1.0 / 3.0);
        // ∇φ(x) = −sign(x)|x|^{1/3}.
        let g = h.reference_grad_phi(&[0.008]).unwrap()[0];
        assert!((g + 0.2).abs() < 1e-15, "{g}");
        let g = h.reference_grad_phi(&[-27.0]).unwrap()[0];
        assert!((g - 3.0).abs() < 1e-14, "{g}");
        // φ(x) = −(3/4)|x|^{4/3}.
        let phi = h.reference_phi(&[-0.008]).unwrap();
        assert!((phi + 0.75 * 0.0016).abs() < 1e-17, "{phi}");
        assert_eq!(h.reference_grad_phi(&[0.0]), Some(vec![0.0]));
        // Not Lipschitz at 0: |∇φ(t) − ∇φ(0)|/t grows like t^{−2/3}; the Hölder-1/3 quotient is 1.
        for t in [1e-3, 1e-6, 1e-9] {
            let gt = h.reference_grad_phi(&[t]).unwrap()[0];
            assert!((gt.abs() / t.powf(1.0 / 3.0) - 1.0).abs() < 1e-12);
            assert!(gt.abs() / t > 0.99 * t.powf(-2.0 / 3.0));
        }
        // p = 1 is the smooth case: φ = −x²/2.
        let h1 = Holder::new(1).unwrap();
        assert_eq!(h1.reference_phi(&[0.6]), Some(0.5 * 0.36 - 0.36));
        assert!(Holder::new(0)
            .unwrap_err()
            .to_string()
            .starts_with("problem.p:"));
        assert!(Holder::new(Holder::MAX_P + 1).is_err());
    }
}
