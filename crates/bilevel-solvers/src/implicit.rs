//! Exact implicit reference (as JAXopt's implicit differentiation with a tight inner solve),
//! docs/ALGORITHMS.md §3: the reference `φ(x)` and `∇φ(x)` for benchmarks.
//!
//! Per outer iteration at `x`, warm-started from the previous `y`:
//!
//! 1. **Newton-CG** on `g(x, ·)` until `‖∇_y g‖ ≤ max(tol, rtol · ‖∇_y g(x, y_start)‖)`: the
//!    direction `p` solves `H p = −∇_y g` by CG from 0 (to `cg_rtol`, at most `cg_max_iter`
//!    iterations); when CG meets negative or zero curvature (`IndefiniteDetected`) the partial
//!    CG iterate is kept if it is a descent direction, otherwise the step falls back to
//!    `p = −fallback_lr ∇_y g`; `y ← Π(y + t p)` with `t = 1, ½, ¼, …` backtracked until Armijo
//!    `g(y + t p) ≤ g(y) + c t ⟨∇_y g, p⟩` holds (up to rounding of `g`: `4 ε |g|`). If neither
//!    the Newton nor the gradient direction decreases `g`, the phase stops where it is.
//! 2. **Implicit formula** `h = ∇_x f − J v`, `H v = ∇_y f`, by [`HypergradientSolver`] (CG to
//!    1e-12 by default; MINRES for a singular `H`), with its diagnostics.
//! 3. `x ← x − α h` ([`UpperOptimizer`]).
//!
//! Without a selection phase, on a lower level with a manifold of minimisers this differentiates
//! at wherever Newton lands (use HG-MS there). With a box projection Π the Newton step is only a
//! heuristic (projected Newton without active-set handling). `extra` reports `newton_steps` and
//! `fallback_steps` (gradient steps taken instead of Newton steps).

use crate::checkpoint::restore_upper;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::positive;
use crate::validate::validate_hypergrad;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::hypergrad::{HypergradOptions, HypergradientSolver, LinearSolverKind};
use bilevel_core::krylov::{cg, CgWorkspace, KrylovOptions};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::{Deserialize, Serialize};

/// Implicit-reference configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImplicitConfig {
    /// Newton steps per outer iteration (at most).
    pub newton_max_iter: usize,
    /// Absolute tolerance on `‖∇_y g‖`.
    pub tol: f64,
    /// Relative tolerance on `‖∇_y g‖` (to its value at the start of the phase).
    pub rtol: f64,
    /// CG iterations per Newton direction (at most).
    pub cg_max_iter: usize,
    /// CG relative residual per Newton direction.
    pub cg_rtol: f64,
    /// Armijo constant c.
    pub armijo: f64,
    /// Backtracking factor in (0, 1).
    pub backtrack: f64,
    /// Backtracking steps (at most) per direction.
    pub max_backtracks: usize,
    /// First step of the gradient fallback `p = −fallback_lr ∇_y g`.
    pub fallback_lr: f64,
    /// The implicit linear solve `H v = ∇_y f` and its diagnostics.
    pub hypergradient: HypergradOptions,
    /// Upper step.
    pub upper: UpperConfig,
}

impl Default for ImplicitConfig {
    fn default() -> Self {
        ImplicitConfig {
            newton_max_iter: 100,
            tol: 1e-12,
            rtol: 1e-12,
            cg_max_iter: 200,
            cg_rtol: 1e-10,
            armijo: 1e-4,
            backtrack: 0.5,
            max_backtracks: 50,
            fallback_lr: 0.1,
            hypergradient: HypergradOptions {
                solver: LinearSolverKind::Cg,
                max_iter: 500,
                rtol: 1e-12,
                warm_start: false,
                ..HypergradOptions::default()
            },
            upper: UpperConfig::default(),
        }
    }
}

impl ImplicitConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "tol", self.tol)?;
        positive(prefix, "rtol", self.rtol)?;
        positive(prefix, "cg_rtol", self.cg_rtol)?;
        positive(prefix, "fallback_lr", self.fallback_lr)?;
        if !(self.armijo > 0.0 && self.armijo < 1.0) {
            return Err(format!(
                "{prefix}.armijo: must lie in (0, 1) (got {})",
                self.armijo
            ));
        }
        if !(self.backtrack > 0.0 && self.backtrack < 1.0) {
            return Err(format!(
                "{prefix}.backtrack: must lie in (0, 1) (got {})",
                self.backtrack
            ));
        }
        validate_hypergrad(&self.hypergradient, &format!("{prefix}.hypergradient"))?;
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

struct Work<Y: Vector> {
    grad: Y,
    neg_grad: Y,
    dir: Y,
    trial: Y,
    cg: CgWorkspace<Y>,
    hyper: HypergradientSolver<Y>,
}

/// What the Newton phase did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonOutcome {
    /// Final `‖∇_y g‖`.
    pub grad_norm: f64,
    /// Newton steps accepted.
    pub newton_steps: usize,
    /// Gradient (fallback) steps accepted.
    pub fallback_steps: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// The exact implicit reference solver.
pub struct Implicit<Y: Vector> {
    config: ImplicitConfig,
    upper: UpperOptimizer,
    work: Option<Work<Y>>,
}

impl<Y: Vector> Implicit<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: ImplicitConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Implicit {
            config,
            upper,
            work: None,
        }
    }
}

/// Backtracking from `t = t0` along `dir` (slope `⟨∇_y g, dir⟩ < 0`); on success `y` is moved.
#[allow(clippy::too_many_arguments)]
fn line_search<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    g_cur: &mut f64,
    slope: f64,
    t0: f64,
    cfg: &ImplicitConfig,
    wk: &mut Work<P::Y>,
) -> bool {
    let mut t = t0;
    for _ in 0..=cfg.max_backtracks {
        wk.trial.assign(y);
        wk.trial.axpy(t, &wk.dir);
        p.project_y(&mut wk.trial);
        let g_trial = p.g(x, &wk.trial);
        let slack = 4.0 * f64::EPSILON * g_cur.abs();
        if g_trial.is_finite() && g_trial <= *g_cur + cfg.armijo * t * slope + slack {
            y.assign(&wk.trial);
            *g_cur = g_trial;
            return true;
        }
        t *= cfg.backtrack;
    }
    false
}

/// Newton-CG on `g(x, ·)` from `y` (see the module documentation).
fn newton<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &ImplicitConfig,
    wk: &mut Work<P::Y>,
) -> NewtonOutcome {
    let kopts = KrylovOptions {
        max_iter: cfg.cg_max_iter,
        rtol: cfg.cg_rtol,
        ..KrylovOptions::default()
    };
    p.grad_g_y(x, y, &mut wk.grad);
    let mut gnorm = wk.grad.norm();
    let target = cfg.tol.max(cfg.rtol * gnorm);
    let mut g_cur = p.g(x, y);
    let (mut newton_steps, mut fallback_steps) = (0, 0);
    for _ in 0..cfg.newton_max_iter {
        if gnorm <= target || !gnorm.is_finite() {
            break;
        }
        wk.neg_grad.assign(&wk.grad);
        wk.neg_grad.scale(-1.0);
        wk.dir.set_zero();
        {
            let mut op = |u: &P::Y, out: &mut P::Y| p.hvp(x, y, u, out);
            // An `IndefiniteDetected` stop leaves the last CG iterate (a descent direction
            // unless it is 0), which the test below accepts or rejects.
            cg(&mut op, &wk.neg_grad, &mut wk.dir, &kopts, &mut wk.cg);
        }
        let slope = wk.grad.dot(&wk.dir);
        let usable = wk.dir.is_finite() && slope < 0.0;
        let moved = if usable && line_search(p, x, y, &mut g_cur, slope, 1.0, cfg, wk) {
            newton_steps += 1;
            true
        } else {
            false
        };
        if !moved {
            // Negative curvature with no usable CG iterate, or Newton failed to decrease g:
            // a gradient step.
            wk.dir.assign(&wk.neg_grad);
            let slope = -gnorm * gnorm;
            if line_search(p, x, y, &mut g_cur, slope, cfg.fallback_lr, cfg, wk) {
                fallback_steps += 1;
            } else {
                break;
            }
        }
        p.grad_g_y(x, y, &mut wk.grad);
        gnorm = wk.grad.norm();
    }
    NewtonOutcome {
        grad_norm: gnorm,
        newton_steps,
        fallback_steps,
        converged: gnorm <= target,
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Implicit<P::Y> {
    fn name(&self) -> &'static str {
        "implicit"
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                grad: z.clone(),
                neg_grad: z.clone(),
                dir: z.clone(),
                cg: CgWorkspace::new(&z),
                hyper: HypergradientSolver::new(p),
                trial: z,
            }
        });
        let out = newton(p, &state.x, &mut state.y, cfg, wk);
        if !state.y.is_finite() {
            return Err(SolverError::NonFinite(
                "implicit: the Newton iterate is not finite".into(),
            ));
        }
        let mut h = vec![0.0; p.dim_x()];
        let diag = wk.hyper.compute(
            p,
            &state.x,
            &state.y,
            &cfg.hypergradient,
            with_diagnostics,
            &mut h,
        )?;
        Ok(StepReport {
            f: p.f(&state.x, &state.y),
            lower_grad_norm: out.grad_norm,
            hypergradient: h,
            diagnostics: Some(diag),
            selection: None,
            extra: vec![
                ("newton_steps".into(), out.newton_steps as f64),
                ("fallback_steps".into(), out.fallback_steps as f64),
            ],
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{diff_norm, norm, run_for, Quad};

    fn at(p: &Quad, x: &[f64], y0: &[f64]) -> (StepReport, Vec<f64>) {
        let mut s = Implicit::new(ImplicitConfig::default(), p.m);
        let mut st = State {
            x: x.to_vec(),
            y: y0.to_vec(),
            iteration: 0,
        };
        let rep = s.hypergradient(&Counted::new(p), &mut st, true).unwrap();
        (rep, st.y)
    }

    /// Closed-form ∇φ to 1e-10 on the strongly convex quadratic (Newton lands in one step).
    #[test]
    fn matches_closed_form_on_quadratic() {
        let p = Quad::small();
        for x in [[0.7, -0.4], [-2.0, 3.0], [0.0, 0.0]] {
            let (rep, y) = at(&p, &x, &[5.0, -3.0, 1.0]);
            let g = p.reference_grad_phi(&x).unwrap();
            assert!(
                diff_norm(&rep.hypergradient, &g) < 1e-10,
                "{rep:?} vs {g:?}"
            );
            assert!(diff_norm(&y, &p.reference_y(&x).unwrap()) < 1e-12);
            assert!(rep.lower_grad_norm <= 1e-12);
            assert_eq!(rep.extra_value("newton_steps"), Some(1.0));
            assert!(rep.diagnostics.unwrap().relative_residual <= 1e-12);
        }
        // By hand on g = y² − xy, f = ½(y − 1)² + ¼x²: y* = x/2, ∇φ = ½(x/2 − 1) + ½x.
        let (rep, y) = at(&Quad::tiny(), &[0.8], &[-3.0]);
        assert!((y[0] - 0.4).abs() < 1e-15);
        assert!((rep.hypergradient[0] - (0.5 * (0.4 - 1.0) + 0.4)).abs() < 1e-15);
    }

    /// On the nonquadratic lower level Newton converges to ‖∇_y g‖ ≤ 1e-12 and the
    /// hypergradient matches central differences of φ(x) = f(x, y*(x)) (each φ value from a
    /// Newton solve) to 1e-7 relative.
    #[test]
    fn matches_finite_differences_of_phi_on_nonquadratic() {
        let p = Quad::nonlinear();
        let x = [0.7, -0.4];
        let y0 = [2.0, -2.0, 2.0];
        let (rep, _) = at(&p, &x, &y0);
        assert!(rep.lower_grad_norm <= 1e-12, "{rep:?}");
        let phi = |x: &[f64]| {
            let (_, y) = at(&p, x, &y0);
            p.f(x, &y)
        };
        let eps = 1e-5;
        let fd: Vec<f64> = (0..2)
            .map(|i| {
                let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                xp[i] += eps;
                xm[i] -= eps;
                (phi(&xp) - phi(&xm)) / (2.0 * eps)
            })
            .collect();
        let rel = diff_norm(&rep.hypergradient, &fd) / norm(&fd);
        assert!(rel < 1e-7, "rel {rel}: {:?} vs {fd:?}", rep.hypergradient);
    }

    /// Budget: 600 iterations, α = 0.1: exact gradient descent on the strongly convex φ reaches
    /// ‖∇φ‖ < 1e-10 and x* to 1e-10.
    #[test]
    fn reduces_grad_phi_on_quadratic() {
        let p = Quad::small();
        let mut s = Implicit::new(ImplicitConfig::default(), 2);
        let out = run_for(&p, &mut s, &[1.5, -2.0], &[0.0; 3], 600);
        let g = norm(&p.reference_grad_phi(&out.state.x).unwrap());
        assert!(g < 1e-10, "‖∇φ‖ → {g}");
        assert!(diff_norm(&out.state.x, &p.x_star()) < 1e-10);
    }

    /// Negative curvature: on circle-center, `g = ¼(‖y − x‖² − R²)²` has `H ≈ −R² I` near
    /// `y = x`, so the first directions come from the gradient fallback; Newton then lands on
    /// the circle of minimisers (where `H` is singular) to ‖∇_y g‖ ≤ 1e-12.
    #[test]
    fn falls_back_to_gradient_steps_on_negative_curvature() {
        use bilevel_problems::{CircleCenter, WithDerivatives};
        let p = WithDerivatives::analytic(CircleCenter::new(1.5, &[0.3, -0.2]).unwrap());
        let cfg = ImplicitConfig {
            hypergradient: HypergradOptions {
                solver: LinearSolverKind::Minres,
                ..ImplicitConfig::default().hypergradient
            },
            ..Default::default()
        };
        let mut s = Implicit::new(cfg, 2);
        let mut st = State {
            x: vec![2.0, 1.0],
            y: vec![2.01, 1.0],
            iteration: 0,
        };
        let rep = s.hypergradient(&Counted::new(&p), &mut st, false).unwrap();
        assert!(rep.extra_value("fallback_steps").unwrap() >= 1.0, "{rep:?}");
        assert!(rep.lower_grad_norm <= 1e-12, "{rep:?}");
        let r = ((st.y[0] - 2.0).powi(2) + (st.y[1] - 1.0).powi(2)).sqrt();
        assert!((r - 1.5).abs() < 1e-10, "radius {r}");
    }

    #[test]
    fn config_parses_and_validates() {
        let c: ImplicitConfig =
            toml::from_str("tol = 1e-10\n[hypergradient]\nsolver = \"minres\"").unwrap();
        assert_eq!(c.hypergradient.solver, LinearSolverKind::Minres);
    }
}
