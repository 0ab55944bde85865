//! Gradient descent on the lower objective, `y ← y − β ∇_y g(x, y)`, shared by every solver:
//! fixed-step loops ([`descend`], [`gd_steps`]) and a [`LowerSolver`] whose step follows the
//! curvature of g ([`StepSize::Auto`]) and which reports divergence instead of returning NaN.

use crate::SolverError;
use bilevel_core::{Bilevel, Counted, Vector};
use serde::{Deserialize, Serialize};

/// Run at most `steps` steps of `y ← Π(y − β ∇_y g(x, y))` (Π = [`Bilevel::project_y`], the
/// identity for unconstrained lower levels), stopping early once
/// `‖∇_y g‖ ≤ tol` (checked before each step). `grad` is scratch. Returns `‖∇_y g‖` at the final
/// `y` (one more gradient, which the next phase usually needs anyway) and the steps taken.
pub fn descend<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    steps: usize,
    beta: f64,
    tol: f64,
    grad: &mut P::Y,
) -> (f64, usize) {
    let mut taken = 0;
    loop {
        p.grad_g_y(x, y, grad);
        let n = grad.norm();
        if n <= tol || taken >= steps || !n.is_finite() {
            return (n, taken);
        }
        y.axpy(-beta, grad);
        p.project_y(y);
        taken += 1;
    }
}

/// Exactly `steps` steps `y ← Π(y − β ∇_y g(x, y))` (no stopping test, so no extra gradient):
/// the fixed `T`-step map the unrolled and zeroth-order methods differentiate. `grad` is scratch.
pub fn gd_steps<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    steps: usize,
    beta: f64,
    grad: &mut P::Y,
) {
    for _ in 0..steps {
        p.grad_g_y(x, y, grad);
        y.axpy(-beta, grad);
        p.project_y(y);
    }
}

/// A step size: `"auto"` (from the problem at the point) or a number.
///
/// In a configuration: `lower_lr = "auto"` (the default where offered) or `lower_lr = 0.1`. For
/// lower-level descent a number is a constant step; for HG-MS's tangent selection it is the
/// first trial step (Armijo-backtracked and adapted afterwards).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum StepSize {
    /// Barzilai–Borwein trial steps safeguarded by Armijo backtracking on g, started from the
    /// Cauchy step `‖∇g‖² / ⟨∇g, H ∇g⟩` (one HVP) and remembered across calls: the step follows
    /// the curvature of g at the point, whatever its scale.
    #[default]
    Auto,
    /// A constant step β (`y ← y − β ∇_y g`); divergence is detected and reported.
    Fixed(f64),
}

impl Serialize for StepSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StepSize::Auto => s.serialize_str("auto"),
            StepSize::Fixed(b) => s.serialize_f64(*b),
        }
    }
}

impl<'de> Deserialize<'de> for StepSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StepSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a positive step size")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StepSize, E> {
                if v == "auto" {
                    Ok(StepSize::Auto)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<StepSize, E> {
                Ok(StepSize::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StepSize, E> {
                Ok(StepSize::Fixed(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StepSize, E> {
                Ok(StepSize::Fixed(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

impl StepSize {
    /// Check a fixed step (positive, finite); the error names `field`.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        match *self {
            StepSize::Auto => Ok(()),
            StepSize::Fixed(b) if b > 0.0 && b.is_finite() => Ok(()),
            StepSize::Fixed(b) => Err(format!(
                "{field}: must be \"auto\" or a positive number (got {b})"
            )),
        }
    }
}

/// Why a lower-level solve stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LowerStatus {
    /// `‖∇_y g‖ ≤ tol`.
    Tolerance,
    /// Converged as far as floating point allows: no step changes y, or none decreases g (nor
    /// `‖∇_y g‖`) by more than rounding. Scale-free: it does not depend on the size of g or y.
    Precision,
    /// The step limit came first (not converged).
    MaxSteps,
    /// The line search found no acceptable step while the values of g were still reliable
    /// (not converged; g may be nonsmooth or the start outside the region where it is PL).
    LineSearch,
}

impl LowerStatus {
    /// `true` for [`LowerStatus::Tolerance`] and [`LowerStatus::Precision`].
    pub fn converged(self) -> bool {
        matches!(self, LowerStatus::Tolerance | LowerStatus::Precision)
    }
}

/// What a lower-level solve achieved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowerOutcome {
    /// `‖∇_y g‖` at the final y.
    pub grad_norm: f64,
    /// `‖∇_y g‖` at the start.
    pub start_grad_norm: f64,
    /// Accepted steps.
    pub steps: usize,
    /// Why it stopped.
    pub status: LowerStatus,
}

/// Gradient descent on `g(x, ·)` with the configured [`StepSize`], its buffers (allocated once)
/// and the remembered step. Divergence (non-finite values, `‖∇_y g‖` or `‖y‖` exploding) is an
/// error naming the quantity, the lower step and the likely cause.
#[derive(Clone, Debug)]
pub struct LowerSolver<Y> {
    rule: StepSize,
    beta: Option<f64>,
    trial: Y,
    grad_trial: Y,
    s: Y,
}

/// Armijo sufficient-decrease constant.
const ARMIJO_C1: f64 = 1e-4;
/// Backtracking reductions before a line search gives up.
const MAX_BACKTRACKS: usize = 60;
/// Memory of the non-monotone line search.
const NONMONOTONE: usize = 10;
/// Longest stall (steps without a new lowest `‖∇g‖`) before the solve counts as converged.
const STALL_WINDOW_MAX: f64 = 200.0;

impl<Y: Vector> LowerSolver<Y> {
    /// A solver for vectors shaped like `like`.
    pub fn new(rule: StepSize, like: &Y) -> Self {
        LowerSolver {
            rule,
            beta: None,
            trial: like.zeros_like(),
            grad_trial: like.zeros_like(),
            s: like.zeros_like(),
        }
    }

    /// The remembered step of the `auto` rule (the last Barzilai–Borwein proposal), if any.
    pub fn remembered_step(&self) -> Option<f64> {
        self.beta
    }

    /// Set the remembered step (restoring a checkpoint).
    pub fn set_remembered_step(&mut self, beta: Option<f64>) {
        self.beta = beta.filter(|b| *b > 0.0 && b.is_finite());
    }

    /// At most `max_steps` descent steps from `y` (projected by [`Bilevel::project_y`]), stopping
    /// at `‖∇_y g‖ ≤ tol` or when converged to precision (`auto`). `grad` receives `∇_y g` at the
    /// final `y`.
    pub fn solve<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &mut Y,
        grad: &mut Y,
        max_steps: usize,
        tol: f64,
    ) -> Result<LowerOutcome, SolverError> {
        match self.rule {
            StepSize::Fixed(beta) => self.solve_fixed(p, x, y, grad, max_steps, tol, beta),
            StepSize::Auto => self.solve_auto(p, x, y, grad, max_steps, tol),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn solve_fixed<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &mut Y,
        grad: &mut Y,
        max_steps: usize,
        tol: f64,
        beta: f64,
    ) -> Result<LowerOutcome, SolverError> {
        p.grad_g_y(x, y, grad);
        let n0 = grad.norm();
        let y0 = y.norm();
        let mut n = n0;
        let mut n_min = n0;
        let mut since_best = 0;
        let mut taken = 0;
        let mut curvature = f64::NAN;
        let done = |n: f64, steps, status| LowerOutcome {
            grad_norm: n,
            start_grad_norm: n0,
            steps,
            status,
        };
        loop {
            if !n.is_finite() || n > 1e8 * n_min.max(f64::MIN_POSITIVE) && n > 1e8 * n0 {
                let l = if curvature.is_finite() {
                    format!(
                        "the fixed step lower_lr = {beta} exceeds 2/L for the curvature L ≈ {curvature:.3e} of g along the path (needs lower_lr < {:.3e})",
                        2.0 / curvature
                    )
                } else {
                    format!("the start is outside the region where the fixed step lower_lr = {beta} is stable")
                };
                return Err(SolverError::Diverged(format!(
                    "lower level diverged at lower step {taken}: ‖∇_y g‖ = {n:.3e} (was {n0:.3e} at the start, ‖y‖ {y0:.3e} → {:.3e}); likely cause: {l}; use lower_lr = \"auto\"",
                    y.norm()
                )));
            }
            if n <= tol {
                return Ok(done(n, taken, LowerStatus::Tolerance));
            }
            if taken >= max_steps {
                return Ok(done(n, taken, LowerStatus::MaxSteps));
            }
            // At the rounding floor: the step no longer changes y, or ‖∇g‖ has not reached a
            // new low in 50 steps.
            if beta * n <= 4.0 * f64::EPSILON * y.norm() || since_best >= 50 {
                return Ok(done(n, taken, LowerStatus::Precision));
            }
            self.s.assign(grad);
            y.axpy(-beta, grad);
            p.project_y(y);
            taken += 1;
            p.grad_g_y(x, y, grad);
            let n_new = grad.norm();
            // Curvature along the last step: ‖∇g⁺ − ∇g‖ / ‖y⁺ − y‖ (for the message only).
            self.s.scale(-1.0);
            self.s.axpy(1.0, grad);
            // Keep the first estimate: later ones measure an already diverging path.
            let c = self.s.norm() / (beta * n);
            if c.is_finite() && curvature.is_nan() {
                curvature = c;
            }
            n = n_new;
            if n < n_min {
                n_min = n;
                since_best = 0;
            } else {
                since_best += 1;
            }
        }
    }

    fn solve_auto<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        x: &[f64],
        y: &mut Y,
        grad: &mut Y,
        max_steps: usize,
        tol: f64,
    ) -> Result<LowerOutcome, SolverError> {
        p.grad_g_y(x, y, grad);
        let n0 = grad.norm();
        if !n0.is_finite() || !y.is_finite() {
            return Err(SolverError::NonFinite(format!(
                "lower level: ∇_y g is not finite at the start (‖∇_y g‖ = {n0:.3e}, ‖y‖ = {:.3e}); the lower-level start or x lies outside the domain of g",
                y.norm()
            )));
        }
        let mut n = n0;
        let done = |n: f64, steps, status| LowerOutcome {
            grad_norm: n,
            start_grad_norm: n0,
            steps,
            status,
        };
        if n <= tol || n == 0.0 {
            return Ok(done(n, 0, LowerStatus::Tolerance));
        }
        let mut gv = p.g(x, y);
        if !gv.is_finite() {
            return Err(SolverError::NonFinite(format!(
                "lower level: g is not finite at the start (g = {gv:.3e}, ‖y‖ = {:.3e})",
                y.norm()
            )));
        }
        let mut beta = match self.beta {
            Some(b) => b,
            None => {
                // Cauchy step of the local quadratic model along −∇g.
                p.hvp(x, y, grad, &mut self.grad_trial);
                let c = grad.dot(&self.grad_trial) / (n * n);
                if c.is_finite() && c != 0.0 {
                    1.0 / c.abs()
                } else {
                    (1.0 + y.norm()) / n
                }
            }
        };
        let mut taken = 0;
        let mut best_n = n;
        let mut since_best = 0;
        // Extreme curvatures seen along the steps (for the stall window).
        let (mut c_min, mut c_max) = (f64::INFINITY, 0.0f64);
        // Non-monotone line search (Grippo, Lampariello & Lucidi 1986; Raydan 1997 for BB):
        // a step is judged against the largest g (and ‖∇g‖) of the last NONMONOTONE steps, so
        // that Barzilai–Borwein steps keep their speed on ill-conditioned problems.
        let mut hist_g = [gv; NONMONOTONE];
        let mut hist_n = [n; NONMONOTONE];
        while taken < max_steps {
            let mut accepted = false;
            let mut unchanged = false;
            let mut flat = false;
            for _ in 0..MAX_BACKTRACKS {
                self.trial.assign(y);
                self.trial.axpy(-beta, grad);
                p.project_y(&mut self.trial);
                self.s.assign(&self.trial);
                self.s.axpy(-1.0, y);
                let step = self.s.norm();
                if step == 0.0 || step <= 4.0 * f64::EPSILON * y.norm() {
                    unchanged = true;
                    break;
                }
                let gt = p.g(x, &self.trial);
                if !gt.is_finite() {
                    beta *= 0.1;
                    continue;
                }
                let d0 = grad.dot(&self.s);
                let g_ref = hist_g.iter().copied().fold(gv, f64::max);
                let decrease = g_ref - gt;
                let armijo = ARMIJO_C1 * (-d0).max(0.0);
                // Values of g carry rounding from its terms, which may be far larger than g
                // itself; where the demanded decrease is below 1e-6·|g| the values are not
                // trusted (Hager & Zhang's ε_k = 1e-6|f| in CG_DESCENT).
                let noise = 1e-6 * gv.abs().max(gt.abs());
                if decrease >= armijo && decrease > noise {
                    p.grad_g_y(x, &self.trial, &mut self.grad_trial);
                    if self.grad_trial.norm().is_finite() {
                        accepted = true;
                        gv = gt;
                        break;
                    }
                    beta *= 0.1;
                } else if armijo <= noise && decrease >= -noise {
                    flat = true;
                    // g is flat to its noise level here, so its values cannot judge the step;
                    // the gradients still can. Approximate Armijo condition (Hager & Zhang
                    // 2005): φ'(1) ≤ (2δ − 1) φ'(0) with φ(t) = g(y + t s), δ = 0.1 — for a
                    // quadratic it accepts exactly the steps below 1.8/curvature along s.
                    p.grad_g_y(x, &self.trial, &mut self.grad_trial);
                    let d1 = self.grad_trial.dot(&self.s);
                    let nt = self.grad_trial.norm();
                    let n_ref = hist_n.iter().copied().fold(n, f64::max);
                    if d0 < 0.0 && (d1 <= -0.8 * d0 || nt < n_ref) && nt.is_finite() {
                        accepted = true;
                        gv = gt;
                        break;
                    }
                    // Secant curvature along s: the largest acceptable step is ≈ 1.8·d0/(d0 − d1).
                    let c = d1 - d0;
                    let frac = if c > 0.0 && d0 < 0.0 {
                        0.9 * 1.8 * (-d0) / c
                    } else {
                        0.5
                    };
                    beta *= frac.clamp(1e-3, 0.5);
                } else {
                    // Reliable values, insufficient decrease: minimiser of the quadratic through
                    // φ(0), φ'(0) = d0 and φ(1), within [0.1, 0.5] of the step.
                    let denom = 2.0 * (-decrease - d0);
                    let frac = if denom > 0.0 { -d0 / denom } else { 0.5 };
                    beta *= frac.clamp(0.1, 0.5);
                }
            }
            if unchanged || !accepted {
                self.beta = Some(beta.max(f64::MIN_POSITIVE));
                let status = if unchanged || flat {
                    LowerStatus::Precision
                } else {
                    LowerStatus::LineSearch
                };
                return Ok(done(n, taken, status));
            }
            // y ← trial; s = y⁺ − y, z = ∇g⁺ − ∇g for the Barzilai–Borwein step.
            y.assign(&self.trial);
            taken += 1;
            let ss = self.s.dot(&self.s);
            self.trial.assign(&self.grad_trial);
            self.trial.axpy(-1.0, grad);
            let sz = self.s.dot(&self.trial);
            grad.assign(&self.grad_trial);
            n = grad.norm();
            hist_g[taken % NONMONOTONE] = gv;
            hist_n[taken % NONMONOTONE] = n;
            if y.norm().is_nan() || y.norm() >= 1e150 || gv == f64::NEG_INFINITY {
                return Err(SolverError::Diverged(format!(
                    "lower level diverged at lower step {taken}: ‖y‖ = {:.3e}, g = {gv:.3e}; g(x, ·) appears unbounded below along the descent path (no lower-level minimiser)",
                    y.norm()
                )));
            }
            if n <= tol || n == 0.0 {
                self.beta = Some(beta);
                return Ok(done(n, taken, LowerStatus::Tolerance));
            }
            if sz > 0.0 && ss > 0.0 {
                c_min = c_min.min(sz / ss);
                c_max = c_max.max(sz / ss);
            }
            // At the rounding floor ‖∇g‖ only fluctuates: no new best over a window that grows
            // like √κ (Barzilai–Borwein is non-monotone for longer on ill-conditioned problems),
            // capped at STALL_WINDOW_MAX (on a manifold of minimisers the curvature along a step
            // can be ~0, so κ measured along the steps is unbounded), is converged.
            let window = (50.0 + 4.0 * (c_max / c_min).sqrt()).min(STALL_WINDOW_MAX);
            if n < best_n {
                best_n = n;
                since_best = 0;
            } else {
                since_best += 1;
                if since_best as f64 >= window {
                    self.beta = Some(beta);
                    return Ok(done(n, taken, LowerStatus::Precision));
                }
            }
            // BB1 step ⟨s, s⟩/⟨s, z⟩ (Barzilai & Borwein 1988); where the curvature along s is not
            // positive, double the last accepted step. Kept within 10⁴ of the accepted one.
            beta = if sz > 0.0 && ss > 0.0 {
                (ss / sz).clamp(1e-4 * beta, 1e4 * beta)
            } else {
                2.0 * beta
            };
        }
        self.beta = Some(beta);
        Ok(done(n, taken, LowerStatus::MaxSteps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bilevel_problems::{CircleCenter, CircleRadius, WithDerivatives};
    use proptest::prelude::*;

    fn shell_residual(p: &CircleCenter, x: &[f64], y: &[f64]) -> f64 {
        let u = [y[0] - x[0], y[1] - x[1]];
        (u[0] * u[0] + u[1] * u[1]) / (p.radius() * p.radius()) - 1.0
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
        /// The auto rule reaches the circle to the rounding floor (relative residual of
        /// ‖y − x‖² − R² below 1e-12) for radii, centres and starts across six orders of
        /// magnitude, with no tuning; the fixed step 0.1 diverges on most of them.
        #[test]
        fn auto_steps_converge_across_scales(
            lr in -3.0f64..3.0, lc in -3.0f64..3.0, ls in -2.0f64..2.0, angle in 0.0f64..std::f64::consts::TAU
        ) {
            let (r, c, s) = (10f64.powf(lr), 10f64.powf(lc), 10f64.powf(ls));
            let p = CircleCenter::new(r, &[0.3 * c, -0.2 * c]).unwrap();
            let w = WithDerivatives::analytic(p.clone());
            let x = [c, 0.5 * c];
            let mut y = vec![x[0] + r * s * angle.cos(), x[1] + r * s * angle.sin()];
            let counted = Counted::new(&w);
            let mut solver = LowerSolver::new(StepSize::Auto, &y);
            let mut grad = y.clone();
            let out = solver.solve(&counted, &x, &mut y, &mut grad, 2000, 0.0).unwrap();
            prop_assert!(out.status.converged(), "{out:?}");
            let res = shell_residual(&p, &x, &y).abs();
            // The floor: y carries a rounding error of ε‖y‖, which is ε‖y‖/R relative to R.
            let floor = 64.0 * f64::EPSILON * (1.0 + (x[0].hypot(x[1]) / r));
            prop_assert!(res <= floor.max(1e-12), "residual {res:e} (floor {floor:e}), {out:?}");
        }
    }

    /// A fixed step that is too large for the curvature is an error naming the lower step, the
    /// quantity and the bound, not NaN or an eigen-computation failure.
    #[test]
    fn fixed_step_divergence_is_named() {
        let w = WithDerivatives::analytic(CircleRadius::new(&[0.7, -1.2]).unwrap());
        let x = [3.0]; // radius e³ ≈ 20: curvature 2R² ≈ 800, so β = 0.1 is far too large.
        let mut y = vec![25.0, 0.0];
        let counted = Counted::new(&w);
        let mut solver = LowerSolver::new(StepSize::Fixed(0.1), &y);
        let mut grad = y.clone();
        let e = solver
            .solve(&counted, &x, &mut y, &mut grad, 1000, 0.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lower level diverged at lower step")
                && e.contains("‖∇_y g‖")
                && e.contains("lower_lr = 0.1")
                && e.contains("2/L")
                && e.contains("\"auto\""),
            "{e}"
        );
        // The auto rule converges from the same start.
        let mut y = vec![25.0, 0.0];
        let mut solver = LowerSolver::new(StepSize::Auto, &y);
        let out = solver
            .solve(&counted, &x, &mut y, &mut grad, 1000, 0.0)
            .unwrap();
        assert!(out.status.converged(), "{out:?}");
        assert!((y[0].hypot(y[1]) - 3f64.exp()).abs() < 1e-12 * 3f64.exp());
    }

    /// A converged point is recognised at once (no steps), and a tolerance stops earlier.
    #[test]
    fn stops_at_tolerance_and_at_the_floor() {
        let w = WithDerivatives::analytic(CircleCenter::new(1.5, &[0.3, -0.2]).unwrap());
        let counted = Counted::new(&w);
        let x = [2.0, 1.0];
        let mut y = vec![3.5, 1.0];
        let mut grad = y.clone();
        let mut solver = LowerSolver::new(StepSize::Auto, &y);
        let out = solver
            .solve(&counted, &x, &mut y, &mut grad, 500, 1e-3)
            .unwrap();
        assert_eq!(out.status, LowerStatus::Tolerance);
        assert!(out.grad_norm <= 1e-3);
        let out = solver
            .solve(&counted, &x, &mut y, &mut grad, 500, 0.0)
            .unwrap();
        // At the floor (a gradient that rounds to exactly 0 counts as the tolerance 0).
        assert!(out.status.converged(), "{out:?}");
        assert!(out.grad_norm <= 1e-14, "{out:?}");
        let again = solver
            .solve(&counted, &x, &mut y, &mut grad, 500, 0.0)
            .unwrap();
        assert!(again.steps <= 2, "{again:?}");
    }

    #[test]
    fn step_size_reads_auto_or_a_number() {
        #[derive(serde::Deserialize)]
        struct T {
            s: StepSize,
        }
        let t: T = toml::from_str("s = \"auto\"").unwrap();
        assert_eq!(t.s, StepSize::Auto);
        let t: T = toml::from_str("s = 0.25").unwrap();
        assert_eq!(t.s, StepSize::Fixed(0.25));
        let t: T = toml::from_str("s = 2").unwrap();
        assert_eq!(t.s, StepSize::Fixed(2.0));
        let e = toml::from_str::<T>("s = \"fast\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"auto\" or a positive step size"), "{e}");
        assert!(StepSize::Fixed(-0.5).validate("solver.lower_lr").is_err());
        assert!(StepSize::Fixed(f64::NAN)
            .validate("solver.lower_lr")
            .is_err());
        assert_eq!(
            serde_json::to_value(StepSize::Auto).unwrap(),
            serde_json::json!("auto")
        );
    }
}
