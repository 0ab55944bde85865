//! `vpbgd-toy`: the penalty-method toy of the V-PBGD paper (Shen & Chen, "On Penalty-based
//! Bilevel Gradient Descent Method", ICML 2023), docs/PROBLEMS.md §C.

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::ProblemError;
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};

/// `vpbgd-toy`: a lower level that satisfies the PL inequality without being strongly convex.
///
/// * `x ∈ [0, 3]` (the box is the upper level's, enforced by the solvers' upper configuration),
///   `y ∈ R`; with `s = x + y`:
/// * `g(x, y) = s² + x sin²(s)`; for `x > −1`, `g ≥ (1 + min(x, 0)) s² ≥ 0`, so
///   `S(x) = {y*(x) = −x}` (a singleton, intrinsic dimension 0);
/// * `∇_y g = 2s + x sin(2s)`, `∇_x g = 2s + sin²(s) + x sin(2s)`,
///   `H = 2 + 2x cos(2s)`, `J = 2 + sin(2s) + 2x cos(2s)` (`H = J = 2 + 2x` on S(x));
/// * `f(x, y) = cos(4y + 2) σ(x) + ½ ln((4x − 2)² + 1)` with `σ(x) = 1/(1 + e^{2 − 4x})`;
/// * `φ(x) = f(x, −x) = cos(4x − 2) σ(x) + ½ ln((4x − 2)² + 1)`;
/// * `∇φ(x) = −4 sin(4x − 2) σ + 4σ(1 − σ) cos(4x − 2) + 4(4x − 2)/((4x − 2)² + 1)`
///   (`σ' = 4σ(1 − σ)`), equal to `∇_x f − J H⁻¹ ∇_y f = ∂_x f − ∂_y f` at `y = −x`.
///
/// [`ProblemDef::reference_x_star`] is the minimiser of φ on `[0, 3]`, computed numerically
/// (grid, then bisection on the closed-form ∇φ to machine precision): `x* ≈ 1.21` (see the
/// tests), interior, so `∇φ(x*) = 0`; `φ* ≈ 0.1999`. φ has two worse local minima in the box,
/// near `x ≈ 0.38` (`φ ≈ 0.443`) and `x ≈ 2.83` (`φ ≈ 1.243`). Default start (configuration): `x = 1`, `y = 0`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VpbgdToy;

impl VpbgdToy {
    /// The upper box `[0, 3]` of the paper.
    pub const X_BOX: [f64; 2] = [0.0, 3.0];

    /// `σ(x) = 1/(1 + e^{2 − 4x})`.
    fn sigma(x: f64) -> f64 {
        1.0 / (1.0 + (2.0 - 4.0 * x).exp())
    }

    /// `φ'(x)` in closed form.
    fn dphi(x: f64) -> f64 {
        let (t, s) = (4.0 * x - 2.0, Self::sigma(x));
        -4.0 * t.sin() * s + 4.0 * s * (1.0 - s) * t.cos() + 4.0 * t / (t * t + 1.0)
    }

    /// `φ(x)` in closed form.
    fn phi(x: f64) -> f64 {
        let t = 4.0 * x - 2.0;
        t.cos() * Self::sigma(x) + 0.5 * (t * t + 1.0).ln()
    }

    /// The minimiser of φ on `[0, 3]`: the best of a 3001-point grid, refined by bisection on
    /// φ' where it changes sign around it.
    pub fn x_star() -> f64 {
        let [lo, hi] = Self::X_BOX;
        let n = 3000;
        let grid = |i: usize| lo + (hi - lo) * i as f64 / n as f64;
        let best = (0..=n)
            .min_by(|&a, &b| Self::phi(grid(a)).total_cmp(&Self::phi(grid(b))))
            .unwrap_or(0);
        let (mut a, mut b) = (grid(best.saturating_sub(1)), grid((best + 1).min(n)));
        if Self::dphi(a) >= 0.0 || Self::dphi(b) <= 0.0 {
            // Minimum at a boundary of the box.
            return grid(best);
        }
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if m <= a || m >= b {
                break;
            }
            if Self::dphi(m) > 0.0 {
                b = m;
            } else {
                a = m;
            }
        }
        0.5 * (a + b)
    }
}

impl GenericLowerGradient for VpbgdToy {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let s = x[0] + y[0];
        out[0] = s * 2.0 + x[0] * (s * 2.0).sin();
    }
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let s = x[0] + y[0];
        let sn = s.sin();
        out[0] = s * 2.0 + sn * sn + x[0] * (s * 2.0).sin();
    }
}

impl ProblemDef for VpbgdToy {
    fn shape(&self) -> Shape {
        Shape::new("vpbgd-toy", 1, 1)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        let t = 4.0 * x[0] - 2.0;
        (4.0 * y[0] + 2.0).cos() * Self::sigma(x[0]) + 0.5 * (t * t + 1.0).ln()
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        let s = x[0] + y[0];
        s * s + x[0] * s.sin().powi(2)
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        let (t, sg, u) = (4.0 * x[0] - 2.0, Self::sigma(x[0]), 4.0 * y[0] + 2.0);
        gx[0] = 4.0 * sg * (1.0 - sg) * u.cos() + 4.0 * t / (t * t + 1.0);
        gy[0] = -4.0 * u.sin() * sg;
    }
    fn hvp_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        let s = x[0] + y[0];
        out[0] = (2.0 + 2.0 * x[0] * (2.0 * s).cos()) * v[0];
    }
    fn cross_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        let s = x[0] + y[0];
        out[0] = (2.0 + (2.0 * s).sin() + 2.0 * x[0] * (2.0 * s).cos()) * v[0];
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(Self::phi(x[0]))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![Self::dphi(x[0])])
    }
    /// `y*(x) = −x` (the unique minimiser for `x > −1`).
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        (x[0] > -1.0).then(|| vec![-x[0]])
    }
    fn intrinsic_dimension(&self) -> usize {
        0
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(vec![Self::x_star()])
    }
    fn reference_phi_star(&self) -> Option<f64> {
        Some(Self::phi(Self::x_star()))
    }
}

problem_config! {
    /// Parameters of `vpbgd-toy` ([`VpbgdToy`]); only the common keys.
    VpbgdToyConfig {}
}

impl BuildProblem for VpbgdToyConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        self.finish(VpbgdToy, vec![1.0], vec![0.0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_gradients, check_products, check_pseudoinverse, check_references};
    use bilevel_core::derivatives::fd_gradient;

    #[test]
    fn vpbgd_products_gradients_references() {
        let p = VpbgdToy;
        check_products(&p, 41, 10, 1.5);
        check_gradients(&p, 42, 10, 1.5);
        for x in [0.0, 0.3, 0.5, 1.0, 1.21, 2.0, 2.9, 3.0] {
            check_references(&p, &[x]);
            let c = check_pseudoinverse(&p, &[x]);
            assert!((c.eigenvalues[0] - (2.0 + 2.0 * x)).abs() < 1e-14);
            assert_eq!(p.reference_y(&[x]), Some(vec![-x]));
            assert_eq!(p.g(&[x], &[-x]), 0.0);
            // ∇φ against central differences of φ(x) = f(x, −x) (through f itself, not the
            // closed-form φ).
            let fd = fd_gradient(|z| p.f(z, &[-z[0]]), &[x], 1e-6);
            let g = p.reference_grad_phi(&[x]).unwrap();
            assert!(
                (g[0] - fd[0]).abs() < 1e-7 * (1.0 + g[0].abs()),
                "{g:?} vs {fd:?}"
            );
        }
        // φ(0.5) = cos 0 · σ(0.5) + ½ ln 1 = ½.
        assert!((p.reference_phi(&[0.5]).unwrap() - 0.5).abs() < 1e-15);
        // g is PL but not strongly convex: H = 2 + 2x cos(2s) vanishes at x = 1, s = π/2.
        let mut h = [0.0];
        p.hvp_analytic(&[1.0], &[std::f64::consts::FRAC_PI_2 - 1.0], &[1.0], &mut h);
        assert!(h[0].abs() < 1e-15, "{h:?}");
    }

    #[test]
    fn vpbgd_x_star_minimises_phi_on_the_box() {
        let p = VpbgdToy;
        let xs = p.reference_x_star().unwrap()[0];
        assert!(xs > 1.1 && xs < 1.3, "{xs}");
        assert!(p.reference_grad_phi(&[xs]).unwrap()[0].abs() < 1e-12);
        let phi_star = p.reference_phi_star().unwrap();
        assert_eq!(phi_star, p.reference_phi(&[xs]).unwrap());
        for i in 0..=300 {
            let x = 3.0 * i as f64 / 300.0;
            assert!(
                p.reference_phi(&[x]).unwrap() >= phi_star - 1e-15,
                "x = {x}"
            );
        }
        // φ* ≈ 0.2 (printed with the test output for the record).
        assert!(
            phi_star > 0.19 && phi_star < 0.21,
            "φ* = {phi_star}, x* = {xs}"
        );
        println!("vpbgd-toy: x* = {xs:.15}, φ* = {phi_star:.15}");
        // The two other local minima of φ on the box are stationary points of the closed form.
        for (guess, value) in [(0.382, 0.4427), (2.83, 1.2435)] {
            let (mut a, mut b) = (guess - 0.01, guess + 0.01);
            assert!(VpbgdToy::dphi(a) < 0.0 && VpbgdToy::dphi(b) > 0.0);
            for _ in 0..60 {
                let m = 0.5 * (a + b);
                if VpbgdToy::dphi(m) > 0.0 {
                    b = m;
                } else {
                    a = m;
                }
            }
            assert!(
                (VpbgdToy::phi(a) - value).abs() < 1e-3,
                "{a}: {}",
                VpbgdToy::phi(a)
            );
        }
    }
}
