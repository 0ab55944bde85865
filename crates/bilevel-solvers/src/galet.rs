//! GALET: generalized alternating method for bilevel problems with a PL lower level (Xiao, Lu &
//! Chen, NeurIPS 2023), docs/ALGORITHMS.md §4.
//!
//! Per outer iteration at `x`:
//!
//! 1. `N` warm-started projected GD steps `y ← Π(y − β ∇_y g(x, y))` (stopping early at
//!    `‖∇_y g‖ ≤ lower_tol`; 0 = always `N`);
//! 2. `w` by `T` warm-started GD steps on `½‖H w + ∇_y f‖²`:
//!    `w ← w − η H(H w + ∇_y f)` (two HVPs per step; `η ≤ 1/λ_max(H)²`). Started from 0 on the
//!    first call, `w` stays in `range H` and converges to `−H^† ∇_y f`;
//! 3. `x ← x − α(∇_x f + J w)` ([`UpperOptimizer`], α = `upper.lr`).
//!
//! No explicit selection: GALET reaches KKT points of `min f s.t. ∇_y g = 0`. `w` is saved in
//! checkpoints. `extra` reports `w_residual`, `‖H w + ∇_y f‖` before the last `w` step.

use crate::checkpoint::{field, restore_upper};
use crate::lower::descend;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::{nonnegative, positive};
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// GALET configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaletConfig {
    /// Lower-level GD steps N per outer iteration.
    pub lower_steps: usize,
    /// Lower-level step β (≤ 1/L_g).
    pub lower_lr: f64,
    /// Early stop of the lower phase at `‖∇_y g‖ ≤ lower_tol` (0: always N steps).
    pub lower_tol: f64,
    /// GD steps T on `½‖H w + ∇_y f‖²` per outer iteration.
    pub w_steps: usize,
    /// Step η of those steps (≤ 1/λ_max(H)²).
    pub w_lr: f64,
    /// Upper step.
    pub upper: UpperConfig,
}

impl Default for GaletConfig {
    fn default() -> Self {
        GaletConfig {
            lower_steps: 10,
            lower_lr: 0.1,
            lower_tol: 0.0,
            w_steps: 10,
            w_lr: 0.1,
            upper: UpperConfig::default(),
        }
    }
}

impl GaletConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "lower_lr", self.lower_lr)?;
        nonnegative(prefix, "lower_tol", self.lower_tol)?;
        positive(prefix, "w_lr", self.w_lr)?;
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

struct Work<Y> {
    grad: Y,
    fy: Y,
    r: Y,
    hr: Y,
    fx: Vec<f64>,
    jw: Vec<f64>,
}

/// The GALET solver.
pub struct Galet<Y: Vector> {
    config: GaletConfig,
    upper: UpperOptimizer,
    /// Warm-started `w ≈ −H^† ∇_y f` (None until the first call).
    w: Option<Y>,
    work: Option<Work<Y>>,
}

impl<Y: Vector> Galet<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: GaletConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Galet {
            config,
            upper,
            w: None,
            work: None,
        }
    }

    /// The current `w` (None before the first call).
    pub fn w(&self) -> Option<&Y> {
        self.w.as_ref()
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Galet<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "galet"
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        _with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let m = p.dim_x();
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                grad: z.clone(),
                fy: z.clone(),
                r: z.clone(),
                hr: z,
                fx: vec![0.0; m],
                jw: vec![0.0; m],
            }
        });
        let w = self.w.get_or_insert_with(|| p.zeros_y());
        let x = &state.x;
        let (lower_grad_norm, _) = descend(
            p,
            x,
            &mut state.y,
            cfg.lower_steps,
            cfg.lower_lr,
            cfg.lower_tol,
            &mut wk.grad,
        );
        let y = &state.y;
        p.grad_f(x, y, &mut wk.fx, &mut wk.fy);
        let mut residual = f64::NAN;
        for _ in 0..cfg.w_steps {
            p.hvp(x, y, w, &mut wk.r);
            wk.r.axpy(1.0, &wk.fy);
            residual = wk.r.norm();
            p.hvp(x, y, &wk.r, &mut wk.hr);
            w.axpy(-cfg.w_lr, &wk.hr);
        }
        if !w.is_finite() {
            return Err(SolverError::NonFinite(
                "galet: w is not finite; reduce w_lr (≤ 1/λ_max(H)²)".into(),
            ));
        }
        p.cross(x, y, w, &mut wk.jw);
        let h: Vec<f64> = wk.fx.iter().zip(&wk.jw).map(|(a, b)| a + b).collect();
        Ok(StepReport {
            f: p.f(x, y),
            lower_grad_norm,
            hypergradient: h,
            diagnostics: None,
            selection: None,
            extra: vec![("w_residual".into(), residual)],
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper, "w": self.w })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)?;
        self.w = field(saved, "galet", "w")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{diff_norm, norm, run_for, Quad};

    /// One iteration by hand on `g = y² − xy`, `f = ½(y − 1)² + ¼x²` (H = 2, J v = −v;
    /// N = 1, β = 0.2, T = 2, η = 0.1): `w₁ = −0.2 ∇_y f`, `w₂ = −0.32 ∇_y f`.
    #[test]
    fn first_iteration_by_hand() {
        let p = Quad::tiny();
        let (x, y) = (0.8, 0.7);
        let cfg = GaletConfig {
            lower_steps: 1,
            lower_lr: 0.2,
            w_steps: 2,
            w_lr: 0.1,
            ..Default::default()
        };
        let mut s = Galet::new(cfg, 1);
        let mut st = State {
            x: vec![x],
            y: vec![y],
            iteration: 0,
        };
        let y1 = y - 0.2 * (2.0 * y - x);
        let fy = y1 - 1.0;
        let h = 0.5 * x + 0.32 * fy;
        let rep = s.hypergradient(&Counted::new(&p), &mut st, false).unwrap();
        assert!((st.y[0] - y1).abs() < 1e-15);
        assert!((s.w().unwrap()[0] + 0.32 * fy).abs() < 1e-15);
        assert!((rep.hypergradient[0] - h).abs() < 1e-15, "{rep:?} vs {h}");
        assert!((rep.extra_value("w_residual").unwrap() - 0.6 * fy.abs()).abs() < 1e-15);
        BilevelSolver::<Quad>::upper_step(&mut s, &mut st, &rep.hypergradient);
        assert!((st.x[0] - (x - 0.1 * h)).abs() < 1e-15);
    }

    /// Budget: 300 iterations with the defaults (N = T = 10, β = η = α = 0.1) on the strongly
    /// convex quadratic: ‖∇φ‖ < 1e-8 and x within 1e-8 of x* (warm starts of y and w remove
    /// the bias at the fixed point).
    #[test]
    fn reduces_grad_phi_on_quadratic() {
        let p = Quad::small();
        let x0 = [1.5, -2.0];
        let mut s = Galet::new(GaletConfig::default(), 2);
        let out = run_for(&p, &mut s, &x0, &[0.0; 3], 300);
        let g = norm(&p.reference_grad_phi(&out.state.x).unwrap());
        assert!(g < 1e-8, "‖∇φ‖ → {g}");
        assert!(diff_norm(&out.state.x, &p.x_star()) < 1e-8);
    }
}
