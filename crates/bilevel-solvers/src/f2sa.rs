//! F2SA: fully first-order stochastic approximation (Kwon, Kwon, Wright & Nowak, ICML 2023),
//! docs/ALGORITHMS.md §4.
//!
//! Penalty Lagrangian `L_λ(x, y, z) = f(x, y) + λ(g(x, y) − g(x, z))`. Per outer iteration
//! `t = 1, 2, …` (`t` = completed iterations + 1):
//!
//! 1. `K` inner steps, each `z ← Π(z − ρ_z,t ∇_y g(x, z))` then
//!    `y ← Π(y − ρ_y,t (∇_y f(x, y) + λ ∇_y g(x, y)))`;
//! 2. `x ← x − ξ_t (∇_x f(x, y) + λ(∇_x g(x, y) − ∇_x g(x, z)))` (the returned hypergradient
//!    is this direction; the step goes through [`UpperOptimizer`] with `lr = ξ_t`);
//! 3. `λ ← λ + δ_t`.
//!
//! With `decay = true` (default): `ρ_y,t = ρ_y t^(−5/7)`, `ρ_z,t = ρ_z t^(−4/7)`,
//! `ξ_t = ξ t^(−4/7)`, `δ_t = δ t^(−1/7)` (exponents configurable); with `decay = false` all
//! are constant. ξ is `upper.lr`. `z` starts at the `y` of the first call; `z` and `λ` are saved
//! in checkpoints. `extra` reports `lambda` (the value used for this direction). No HVP.

use crate::checkpoint::{field, restore_upper};
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::{nonnegative, positive};
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// F2SA configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct F2saConfig {
    /// Inner steps K per outer iteration.
    pub inner_steps: usize,
    /// Base step ρ_y of `y`.
    pub lr_y: f64,
    /// Base step ρ_z of `z`.
    pub lr_z: f64,
    /// Initial multiplier λ₀.
    pub lambda0: f64,
    /// Base increment δ of λ per outer iteration.
    pub lambda_step: f64,
    /// Optional cap on λ (`None`: λ grows without bound).
    pub lambda_max: Option<f64>,
    /// Decay the steps and the increment with the iteration count (`false`: constant).
    pub decay: bool,
    /// Divide ρ_y by max(1, λ_t), so that ρ_y λ L_g stays bounded while λ grows (without it a
    /// growing λ eventually makes the y iteration diverge).
    pub scale_y_step: bool,
    /// Decay exponent of ρ_y (5/7).
    pub decay_y: f64,
    /// Decay exponent of ρ_z (4/7).
    pub decay_z: f64,
    /// Decay exponent of ξ (4/7).
    pub decay_x: f64,
    /// Decay exponent of δ (1/7).
    pub decay_lambda: f64,
    /// Upper step; its `lr` is the base step ξ of `x`.
    pub upper: UpperConfig,
}

impl Default for F2saConfig {
    fn default() -> Self {
        F2saConfig {
            inner_steps: 10,
            lr_y: 0.01,
            scale_y_step: false,
            lr_z: 0.01,
            lambda0: 1.0,
            lambda_step: 0.1,
            lambda_max: None,
            decay: true,
            decay_y: 5.0 / 7.0,
            decay_z: 4.0 / 7.0,
            decay_x: 4.0 / 7.0,
            decay_lambda: 1.0 / 7.0,
            upper: UpperConfig {
                lr: 0.01,
                ..UpperConfig::default()
            },
        }
    }
}

impl F2saConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "lr_y", self.lr_y)?;
        positive(prefix, "lr_z", self.lr_z)?;
        nonnegative(prefix, "lambda0", self.lambda0)?;
        nonnegative(prefix, "lambda_step", self.lambda_step)?;
        if let Some(l) = self.lambda_max {
            positive(prefix, "lambda_max", l)?;
        }
        nonnegative(prefix, "decay_y", self.decay_y)?;
        nonnegative(prefix, "decay_z", self.decay_z)?;
        nonnegative(prefix, "decay_x", self.decay_x)?;
        nonnegative(prefix, "decay_lambda", self.decay_lambda)?;
        if self.inner_steps == 0 {
            return Err(format!("{prefix}.inner_steps: must be ≥ 1 (got 0)"));
        }
        self.upper.validate(&format!("{prefix}.upper"))
    }

    /// `base · t^(−exponent)` when decaying, else `base` (`t` ≥ 1).
    fn schedule(&self, base: f64, exponent: f64, t: usize) -> f64 {
        if self.decay {
            base * (t as f64).powf(-exponent)
        } else {
            base
        }
    }
}

struct Work<Y> {
    grad: Y,
    fy: Y,
    fx: Vec<f64>,
    gx: Vec<f64>,
    gxz: Vec<f64>,
}

/// The F2SA solver.
pub struct F2sa<Y: Vector> {
    config: F2saConfig,
    upper: UpperOptimizer,
    /// Auxiliary lower variable (None until the first call).
    z: Option<Y>,
    lambda: f64,
    work: Option<Work<Y>>,
}

impl<Y: Vector> F2sa<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: F2saConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        let lambda = config.lambda0;
        F2sa {
            config,
            upper,
            z: None,
            lambda,
            work: None,
        }
    }

    /// The current multiplier λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The auxiliary variable `z` (None before the first call).
    pub fn z(&self) -> Option<&Y> {
        self.z.as_ref()
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for F2sa<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "f2sa"
    }

    fn estimates_hypergradient(&self) -> bool {
        false
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        _with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let t = state.iteration + 1;
        let lambda = self.lambda;
        let rho_y = cfg.schedule(cfg.lr_y, cfg.decay_y, t)
            / if cfg.scale_y_step {
                lambda.max(1.0)
            } else {
                1.0
            };
        let rho_z = cfg.schedule(cfg.lr_z, cfg.decay_z, t);
        let m = p.dim_x();
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                grad: z.clone(),
                fy: z,
                fx: vec![0.0; m],
                gx: vec![0.0; m],
                gxz: vec![0.0; m],
            }
        });
        let z = self.z.get_or_insert_with(|| state.y.clone());
        let x = &state.x;
        for _ in 0..cfg.inner_steps {
            p.grad_g_y(x, z, &mut wk.grad);
            z.axpy(-rho_z, &wk.grad);
            p.project_y(z);
            p.grad_f(x, &state.y, &mut wk.fx, &mut wk.fy);
            p.grad_g_y(x, &state.y, &mut wk.grad);
            wk.fy.axpy(lambda, &wk.grad);
            state.y.axpy(-rho_y, &wk.fy);
            p.project_y(&mut state.y);
        }
        if !(state.y.is_finite() && z.is_finite()) {
            return Err(SolverError::NonFinite(
                "f2sa: y or z is not finite; reduce lr_y/lr_z (ρ_y λ L_g must stay below 2)".into(),
            ));
        }
        p.grad_f(x, &state.y, &mut wk.fx, &mut wk.fy);
        p.grad_g(x, &state.y, &mut wk.gx, &mut wk.grad);
        p.grad_g_x(x, z, &mut wk.gxz);
        let h: Vec<f64> = (0..m)
            .map(|i| wk.fx[i] + lambda * (wk.gx[i] - wk.gxz[i]))
            .collect();
        Ok(StepReport {
            f: p.f(x, &state.y),
            lower_grad_norm: wk.grad.norm(),
            hypergradient: h,
            diagnostics: None,
            selection: None,
            extra: vec![("lambda".into(), lambda)],
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]) {
        let cfg = &self.config;
        let t = state.iteration + 1;
        let lr = cfg.schedule(cfg.upper.lr, cfg.decay_x, t);
        self.upper.step_with(lr, &mut state.x, h);
        self.lambda += cfg.schedule(cfg.lambda_step, cfg.decay_lambda, t);
        if let Some(cap) = cfg.lambda_max {
            self.lambda = self.lambda.min(cap);
        }
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper, "z": self.z, "lambda": self.lambda })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)?;
        self.lambda = field(saved, "f2sa", "lambda")?;
        self.z = field(saved, "f2sa", "z")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{norm, run_for, Quad};

    /// Two iterations by hand on `g = y² − xy`, `f = ½(y − 1)² + ¼x²` (K = 1), the second with
    /// decayed steps.
    #[test]
    fn first_iterations_by_hand() {
        let p = Quad::tiny();
        let cp = Counted::new(&p);
        let (x, y, rho_y, rho_z, xi, l0, delta) = (0.8, 0.3, 0.1, 0.2, 0.05, 1.0, 0.1);
        let cfg = F2saConfig {
            inner_steps: 1,
            lr_y: rho_y,
            lr_z: rho_z,
            lambda0: l0,
            lambda_step: delta,
            upper: UpperConfig {
                lr: xi,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut s = F2sa::new(cfg, 1);
        let mut st = State {
            x: vec![x],
            y: vec![y],
            iteration: 0,
        };
        // t = 1: no decay yet.
        let z1 = y - rho_z * (2.0 * y - x);
        let y1 = y - rho_y * ((y - 1.0) + l0 * (2.0 * y - x));
        let h1 = 0.5 * x + l0 * (-y1 + z1);
        let rep = s.hypergradient(&cp, &mut st, false).unwrap();
        assert!((rep.hypergradient[0] - h1).abs() < 1e-15);
        assert!((st.y[0] - y1).abs() < 1e-15 && (s.z().unwrap()[0] - z1).abs() < 1e-15);
        BilevelSolver::<Quad>::upper_step(&mut s, &mut st, &rep.hypergradient);
        let x1 = x - xi * h1;
        let l1 = l0 + delta;
        assert!((st.x[0] - x1).abs() < 1e-15 && (s.lambda() - l1).abs() < 1e-15);
        st.iteration = 1;
        // t = 2: decayed steps.
        let (ry, rz, rx, rd) = (
            rho_y * 2f64.powf(-5.0 / 7.0),
            rho_z * 2f64.powf(-4.0 / 7.0),
            xi * 2f64.powf(-4.0 / 7.0),
            delta * 2f64.powf(-1.0 / 7.0),
        );
        let z2 = z1 - rz * (2.0 * z1 - x1);
        let y2 = y1 - ry * ((y1 - 1.0) + l1 * (2.0 * y1 - x1));
        let h2 = 0.5 * x1 + l1 * (-y2 + z2);
        let rep = s.hypergradient(&cp, &mut st, false).unwrap();
        assert!((rep.hypergradient[0] - h2).abs() < 1e-15);
        BilevelSolver::<Quad>::upper_step(&mut s, &mut st, &rep.hypergradient);
        assert!((st.x[0] - (x1 - rx * h2)).abs() < 1e-15);
        assert!((s.lambda() - (l1 + rd)).abs() < 1e-15);
        // Checkpoint round trip restores z and λ.
        let saved = BilevelSolver::<Quad>::checkpoint(&s);
        let mut fresh = F2sa::<Vec<f64>>::new(F2saConfig::default(), 1);
        BilevelSolver::<Quad>::restore(&mut fresh, &saved).unwrap();
        assert_eq!(fresh.lambda(), s.lambda());
        assert_eq!(fresh.z(), s.z());
    }

    /// Budget: 300 iterations, K = 10, constant steps ρ_y = ρ_z = ξ = 0.05 (`decay = false`),
    /// λ capped at 10, on the strongly convex quadratic: ‖∇φ‖ drops by > 100× (3.56 → 1.9e-2;
    /// what is left is F2SA's O(1/λ) bias). With a larger cap (15) this toy diverges: the
    /// `x`–`z` coupling is amplified by λ, so λ, ρ and ξ must be tuned together.
    #[test]
    fn reduces_grad_phi_on_quadratic() {
        let p = Quad::small();
        let x0 = [1.5, -2.0];
        let g0 = norm(&p.reference_grad_phi(&x0).unwrap());
        let cfg = F2saConfig {
            lr_y: 0.05,
            lr_z: 0.05,
            decay: false,
            lambda_max: Some(10.0),
            upper: UpperConfig {
                lr: 0.05,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut s = F2sa::new(cfg, 2);
        let out = run_for(&p, &mut s, &x0, &[0.0; 3], 300);
        let g = norm(&p.reference_grad_phi(&out.state.x).unwrap());
        assert_eq!(s.lambda(), 10.0);
        assert!(g < 1e-2 * g0, "‖∇φ‖ {g0} → {g}");
    }
}
