//! Circles as lower-level solution sets (docs/PROBLEMS.md §A): `circle-center` (the circle moves with
//! x) and `circle-radius` (its radius depends on x).

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_positive, check_vector, ProblemError};
use crate::shell::{shell_grad, shell_hvp, shell_residual, shell_value};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::vector::{dot, norm};
use bilevel_core::NamedArray;

/// `circle-center`: the solution set is a circle of radius R centred at the upper variable.
///
/// * `g(x, y) = ¼(‖y − x‖² − R²)²`, `x, y ∈ R²`;
/// * `S(x) = {y : ‖y − x‖ = R}`, intrinsic dimension `k = 1`;
/// * `f(x, y) = ½‖y − b‖²`;
/// * `y*(x) = x + R (b − x)/‖b − x‖` (unique iff `x ≠ b`);
/// * `φ(x) = ½(‖x − b‖ − R)²`, `∇φ(x) = (‖x − b‖ − R)(x − b)/‖x − b‖` (not differentiable at
///   `x = b`).
///
/// Products: with `u = y − x`, `s = ‖u‖² − R²`: `H v = s v + 2⟨u, v⟩u` and `J v = −H v`.
/// Reference (docs/PROBLEMS.md): `R = 1.5`, `b = (0.3, −0.2)`, `x = (2, 1)` gives
/// `∇φ = (0.47454821, 0.33497520)`. Minimising φ drives `‖x − b‖ → R`.
#[derive(Clone, Debug, PartialEq)]
pub struct CircleCenter {
    radius: f64,
    b: [f64; 2],
}

impl CircleCenter {
    /// Default radius R.
    pub const DEFAULT_RADIUS: f64 = 1.5;
    /// Default target b.
    pub const DEFAULT_B: [f64; 2] = [0.3, -0.2];

    /// A circle of radius `radius > 0` and upper target `b` (2 entries).
    pub fn new(radius: f64, b: &[f64]) -> Result<Self, ProblemError> {
        check_positive("radius", radius)?;
        check_vector("b", b, 2)?;
        Ok(CircleCenter {
            radius,
            b: [b[0], b[1]],
        })
    }
    /// Radius R.
    pub fn radius(&self) -> f64 {
        self.radius
    }
    /// Upper target b.
    pub fn b(&self) -> [f64; 2] {
        self.b
    }
}

impl Default for CircleCenter {
    fn default() -> Self {
        CircleCenter {
            radius: Self::DEFAULT_RADIUS,
            b: Self::DEFAULT_B,
        }
    }
}

impl GenericLowerGradient for CircleCenter {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        shell_grad(y, Some(x), T::from(self.radius * self.radius), out);
    }
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        // ∇_x g = −s (y − x) = −∇_y g.
        shell_grad(y, Some(x), T::from(self.radius * self.radius), out);
        out.iter_mut().for_each(|o| *o = -*o);
    }
}

impl ProblemDef for CircleCenter {
    fn shape(&self) -> Shape {
        Shape::new("circle-center", 2, 2)
    }
    fn f(&self, _x: &[f64], y: &[f64]) -> f64 {
        let (d0, d1) = (y[0] - self.b[0], y[1] - self.b[1]);
        0.5 * (d0 * d0 + d1 * d1)
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        shell_value(y, Some(x), self.radius * self.radius)
    }
    fn grad_f(&self, _x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx.iter_mut().for_each(|g| *g = 0.0);
        gy[0] = y[0] - self.b[0];
        gy[1] = y[1] - self.b[1];
    }
    fn hvp_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, Some(x), self.radius * self.radius, v, out);
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        out.copy_from_slice(v);
        true
    }
    fn export_arrays(&self) -> Vec<NamedArray> {
        vec![
            NamedArray::vector("radius", vec![self.radius]),
            NamedArray::vector("b", self.b.to_vec()),
        ]
    }
    fn cross_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, Some(x), self.radius * self.radius, v, out);
        out.iter_mut().for_each(|o| *o = -*o);
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let dist = norm(&[x[0] - self.b[0], x[1] - self.b[1]]);
        Some(0.5 * (dist - self.radius).powi(2))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let dx = [x[0] - self.b[0], x[1] - self.b[1]];
        let dist = norm(&dx);
        if dist == 0.0 {
            return None;
        }
        let c = (dist - self.radius) / dist;
        Some(vec![c * dx[0], c * dx[1]])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let db = [self.b[0] - x[0], self.b[1] - x[1]];
        let dist = norm(&db);
        if dist == 0.0 {
            return None;
        }
        let c = self.radius / dist;
        Some(vec![x[0] + c * db[0], x[1] + c * db[1]])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
}

/// `circle-radius`: the solution set is a circle about 0 whose radius `e^x` depends on x.
///
/// * `g(x, y) = ¼(‖y‖² − e^{2x})²`, `x ∈ R`, `y ∈ R²`;
/// * `S(x) = {y : ‖y‖ = e^x}`, intrinsic dimension `k = 1`;
/// * `f(x, y) = ⟨a, y⟩ + ½x²`;
/// * `y*(x) = −e^x a/‖a‖`, `φ(x) = −‖a‖e^x + ½x²`, `∇φ(x) = −‖a‖e^x + x`.
///
/// Products: with `s = ‖y‖² − e^{2x}`: `H v = s v + 2⟨y, v⟩y`, `J v = −2e^{2x}⟨y, v⟩`.
/// Reference (docs/PROBLEMS.md): `a = (0.7, −1.2)`, `x = 0.3` gives `∇φ = −1.57528379`.
#[derive(Clone, Debug, PartialEq)]
pub struct CircleRadius {
    a: [f64; 2],
}

impl CircleRadius {
    /// Default linear upper term a.
    pub const DEFAULT_A: [f64; 2] = [0.7, -1.2];

    /// Upper term `a` (2 entries, nonzero).
    pub fn new(a: &[f64]) -> Result<Self, ProblemError> {
        check_vector("a", a, 2)?;
        if norm(a) == 0.0 {
            return Err(ProblemError::invalid(
                "a",
                "must be nonzero (the selection −e^x a/‖a‖ needs a direction)",
                a,
            ));
        }
        Ok(CircleRadius { a: [a[0], a[1]] })
    }
    /// Upper term a.
    pub fn a(&self) -> [f64; 2] {
        self.a
    }
}

impl Default for CircleRadius {
    fn default() -> Self {
        CircleRadius { a: Self::DEFAULT_A }
    }
}

impl GenericLowerGradient for CircleRadius {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        shell_grad(y, None, (x[0] * 2.0).exp(), out);
    }
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        // ∂g/∂x = ½ s · ∂s/∂x = −s e^{2x}.
        let e2x = (x[0] * 2.0).exp();
        out[0] = -shell_residual(y, None, e2x) * e2x;
    }
}

impl ProblemDef for CircleRadius {
    fn shape(&self) -> Shape {
        Shape::new("circle-radius", 1, 2)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        dot(&self.a, y) + 0.5 * x[0] * x[0]
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        shell_value(y, None, (2.0 * x[0]).exp())
    }
    fn grad_f(&self, x: &[f64], _y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = x[0];
        gy.copy_from_slice(&self.a);
    }
    fn hvp_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        shell_hvp(y, None, (2.0 * x[0]).exp(), v, out);
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) -> bool {
        out.iter_mut().for_each(|o| *o = 0.0);
        true
    }
    fn export_arrays(&self) -> Vec<NamedArray> {
        vec![NamedArray::vector("a", self.a.to_vec())]
    }
    fn cross_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = -2.0 * (2.0 * x[0]).exp() * dot(y, v);
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(-norm(&self.a) * x[0].exp() + 0.5 * x[0] * x[0])
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![-norm(&self.a) * x[0].exp() + x[0]])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let c = -x[0].exp() / norm(&self.a);
        Some(vec![c * self.a[0], c * self.a[1]])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
}

problem_config! {
    /// Parameters of `circle-center` ([`CircleCenter`]).
    CircleCenterConfig {
        /// Circle radius R > 0 (default 1.5).
        radius: f64,
        /// Upper target b, 2 entries (default `[0.3, -0.2]`).
        b: Vec<f64>,
    }
}

impl BuildProblem for CircleCenterConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let radius = self.radius.unwrap_or(CircleCenter::DEFAULT_RADIUS);
        let b = self.b.as_deref().unwrap_or(&CircleCenter::DEFAULT_B);
        self.finish(
            CircleCenter::new(radius, b)?,
            vec![2.0, 1.0],
            vec![3.5, 1.0],
        )
    }
}

problem_config! {
    /// Parameters of `circle-radius` ([`CircleRadius`]).
    CircleRadiusConfig {
        /// Upper linear term a, 2 entries, nonzero (default `[0.7, -1.2]`).
        a: Vec<f64>,
    }
}

impl BuildProblem for CircleRadiusConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let a = self.a.as_deref().unwrap_or(&CircleRadius::DEFAULT_A);
        self.finish(CircleRadius::new(a)?, vec![0.3], vec![1.0, 0.0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        check_gradients, check_products, check_pseudoinverse, check_references, pinv_hypergrad,
        wrap,
    };
    use crate::wrapper::Derivatives;

    #[test]
    fn circle_center_reference_values() {
        let p = CircleCenter::default();
        let g = p.reference_grad_phi(&[2.0, 1.0]).unwrap();
        // docs/PROBLEMS.md prints 8 digits.
        assert!((g[0] - 0.47454821).abs() < 1e-8, "{g:?}");
        assert!((g[1] - 0.33497520).abs() < 1e-8, "{g:?}");
        // Closed form by hand: x − b = (1.7, 1.2), ‖x − b‖ = √4.33.
        let n = 4.33f64.sqrt();
        let expect = [(n - 1.5) / n * 1.7, (n - 1.5) / n * 1.2];
        assert!(bilevel_core::derivatives::relative_error(&g, &expect, 1e-300) < 1e-14);
        assert!((p.reference_phi(&[2.0, 1.0]).unwrap() - 0.5 * (n - 1.5).powi(2)).abs() < 1e-15);
        let y = p.reference_y(&[2.0, 1.0]).unwrap();
        assert!(((y[0] - 2.0).hypot(y[1] - 1.0) - 1.5).abs() < 1e-15);
    }

    #[test]
    fn circle_center_products_gradients_references() {
        let p = CircleCenter::default();
        check_products(&p, 1, 8, 1.5);
        check_gradients(&p, 2, 8, 1.5);
        for x in [[2.0, 1.0], [-1.0, 0.5], [0.4, -0.1], [5.0, -3.0]] {
            check_references(&p, &x);
            check_pseudoinverse(&p, &x);
        }
        let q = CircleCenter::new(0.7, &[-1.0, 2.0]).unwrap();
        check_products(&q, 3, 4, 1.0);
        check_references(&q, &[0.5, 0.5]);
        check_pseudoinverse(&q, &[0.5, 0.5]);
    }

    #[test]
    fn circle_center_kink_at_b_and_wrong_selection() {
        let p = CircleCenter::default();
        let b = CircleCenter::DEFAULT_B;
        assert_eq!(p.reference_grad_phi(&b), None);
        assert_eq!(p.reference_y(&b), None);
        assert_eq!(p.reference_phi(&b), Some(0.5 * 1.5 * 1.5));
        // A point of S(x) a quarter turn away from y*: the kernel part of ∇_y f is not zero and
        // the pseudoinverse formula there is not ∇φ.
        let x = [2.0, 1.0];
        let ys = p.reference_y(&x).unwrap();
        let u = [ys[0] - x[0], ys[1] - x[1]];
        let y_wrong = vec![x[0] - u[1], x[1] + u[0]];
        assert!(p.g(&x, &y_wrong) < 1e-25);
        let w = wrap(&p, Derivatives::Analytic);
        let c = pinv_hypergrad(&w, &x, &y_wrong);
        assert!(c.kernel_component > 0.1, "{}", c.kernel_component);
        let truth = p.reference_grad_phi(&x).unwrap();
        assert!(bilevel_core::derivatives::relative_error(&c.hypergrad, &truth, 1.0) > 0.1);
    }

    #[test]
    fn circle_radius_reference_values() {
        let p = CircleRadius::default();
        let g = p.reference_grad_phi(&[0.3]).unwrap();
        assert!((g[0] - (-1.57528379)).abs() < 1e-8, "{g:?}");
        let expect = -(0.7f64.hypot(1.2)) * 0.3f64.exp() + 0.3;
        assert!((g[0] - expect).abs() < 1e-15);
        let y = p.reference_y(&[0.3]).unwrap();
        assert!((y[0].hypot(y[1]) - 0.3f64.exp()).abs() < 1e-15);
        assert!(y[0] < 0.0 && y[1] > 0.0, "y* points away from a");
    }

    #[test]
    fn circle_radius_products_gradients_references() {
        let p = CircleRadius::default();
        check_products(&p, 4, 8, 0.8);
        check_gradients(&p, 5, 8, 0.8);
        for x in [0.3, -1.0, 0.0, 1.2] {
            check_references(&p, &[x]);
            check_pseudoinverse(&p, &[x]);
        }
        let q = CircleRadius::new(&[0.0, 2.0]).unwrap();
        check_references(&q, &[-0.4]);
        check_pseudoinverse(&q, &[-0.4]);
    }

    /// The Riemannian Hessian of f on S(x) (bilevel_core::manifold) against the worked case of
    /// docs/hgms.md: on circle-radius at `y = s r â`, `q = −s‖a‖/r` — positive at the minimiser,
    /// negative at the maximiser — for radii from 1e-3 to 1e3, with exact third derivatives
    /// (hyper-dual) and with the finite-difference fallback.
    #[test]
    fn tangent_curvature_matches_the_worked_case() {
        use bilevel_core::hypergrad::range_sketch;
        use bilevel_core::manifold::{tangent_curvature, CurvatureOptions, CurvatureWorkspace};
        use bilevel_core::Bilevel;
        for (a, xr) in [
            ([0.7, -1.2], 0.3f64),
            ([3.0, 4.0], -6.9),
            ([1e-3, 2e-3], 6.9),
        ] {
            for derivatives in [
                Derivatives::Analytic,
                Derivatives::FiniteDifference { eps: 1e-6 },
            ] {
                let p = wrap(&CircleRadius::new(&a).unwrap(), derivatives);
                let x = [xr];
                let r = xr.exp();
                let na = norm(&a);
                for s in [-1.0, 1.0] {
                    let y = vec![s * r * a[0] / na, s * r * a[1] / na];
                    // w = H^† ∇_y f = (ââᵀ/2r²) a = a/(2r²) (H = 2yyᵀ on the circle).
                    let w = vec![a[0] / (2.0 * r * r), a[1] / (2.0 * r * r)];
                    let mut op = |u: &Vec<f64>, o: &mut Vec<f64>| p.hvp(&x, &y, u, o);
                    let sk = range_sketch(&mut op, &y, 1e-6, 16, 1, true).unwrap();
                    assert_eq!(sk.basis.len(), 1);
                    let mut ws = CurvatureWorkspace::new(&y, 1);
                    let c = tangent_curvature(
                        &p,
                        &x,
                        &y,
                        &w,
                        &sk.basis,
                        &CurvatureOptions::default(),
                        &mut ws,
                    )
                    .unwrap()
                    .unwrap();
                    let want = -s * na / r;
                    let tol = if matches!(derivatives, Derivatives::Analytic) {
                        1e-10
                    } else {
                        1e-4
                    };
                    assert!(
                        (c.min - want).abs() <= tol * want.abs(),
                        "a {a:?}, r {r:e}, s {s}: q {} vs {want}",
                        c.min
                    );
                    assert_eq!(c.tangent_dim, 1);
                }
            }
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert_eq!(
            CircleCenter::new(0.0, &[0.0, 0.0]).unwrap_err().to_string(),
            "problem.radius: must be positive (got 0.0)"
        );
        assert_eq!(
            CircleCenter::new(1.0, &[0.0, 0.0, 1.0])
                .unwrap_err()
                .to_string(),
            "problem.b: expected 2 entries, got 3"
        );
        assert!(CircleCenter::new(f64::NAN, &[0.0, 0.0]).is_err());
        assert!(CircleRadius::new(&[0.0, 0.0])
            .unwrap_err()
            .to_string()
            .starts_with("problem.a:"));
        assert!(CircleRadius::new(&[f64::INFINITY, 0.0]).is_err());
    }
}
