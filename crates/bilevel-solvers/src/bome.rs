//! BOME: Bilevel Optimization Made Easy (Liu, Ye, Wright, Stone & Liu, NeurIPS 2022), a
//! first-order value-gap method, docs/ALGORITHMS.md §4.
//!
//! Per outer iteration at `(x, y)`:
//!
//! 1. `ŷ_T`: `T` projected GD steps on `g(x, ·)` from the current `y`, then treated as a constant;
//! 2. `q = g(x, y) − g(x, ŷ_T)`, `∇q = (∇_x g(x, y) − ∇_x g(x, ŷ_T), ∇_y g(x, y))`;
//! 3. `d = ∇f + λ ∇q`, `λ = max((φ_t − ⟨∇f, ∇q⟩)/(‖∇q‖² + ε), 0)` with
//!    `φ_t = η ‖∇q‖²` (`phi = "grad-norm"`, default) or `φ_t = η q` (`phi = "value"`); the small
//!    `ε` (default 1e-12) keeps λ finite where `∇q = 0` (then `d = ∇f`);
//! 4. joint step `(x, y) ← (x, y) − ξ d`.
//!
//! Fitted into [`BilevelSolver`]: `hypergradient` computes `d`, applies `y ← Π(y − ξ d_y)` and
//! returns `d_x`; `upper_step` applies `x ← x − ξ d_x` through [`UpperOptimizer`], so ξ is
//! `upper.lr` (default 0.1; use 0.05 on toys) and the box projection of `x` comes from `upper`
//! (an Adam `upper.method` changes only the `x` step). The reported `f` and `lower_grad_norm`
//! are taken at the `y` the direction was computed at; `extra` holds `lambda`, `q` and
//! `grad_q_norm`. Cost: `T + 3` gradients and two `g` values per iteration, no HVP.

use crate::checkpoint::restore_upper;
use crate::lower::gd_steps;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::positive;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::{Deserialize, Serialize};

/// Choice of the control `φ_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BomePhi {
    /// `φ_t = η ‖∇q‖²`.
    GradNorm,
    /// `φ_t = η q`.
    Value,
}

/// BOME configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BomeConfig {
    /// GD steps T for `ŷ_T`.
    pub lower_steps: usize,
    /// Step β of those GD steps (≤ 1/L_g).
    pub lower_lr: f64,
    /// Control `φ_t`.
    pub phi: BomePhi,
    /// η in `φ_t`.
    pub eta: f64,
    /// ε added to `‖∇q‖²` in the denominator of λ.
    pub eps: f64,
    /// Our safeguard, off by default (the paper uses a fixed ξ): scale the joint step to
    /// `ξ · min(1, c/λ_t)` with `c = lambda_step_scale`. Near the solution λ grows like
    /// `‖∇_y f‖/‖∇_y g‖`; once `ξ λ L_g` reaches 2 the fixed step falls into a 2-cycle, which
    /// bounds BOME's accuracy. With the scaling, `ξ_t λ_t` stays at most `ξ c`.
    pub lambda_step_scale: Option<f64>,
    /// Upper step; its `lr` is the joint step ξ (applied to `y` as well).
    pub upper: UpperConfig,
}

impl Default for BomeConfig {
    fn default() -> Self {
        BomeConfig {
            lower_steps: 10,
            lower_lr: 0.1,
            phi: BomePhi::GradNorm,
            eta: 0.5,
            eps: 1e-12,
            lambda_step_scale: None,
            upper: UpperConfig::default(),
        }
    }
}

impl BomeConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "lower_lr", self.lower_lr)?;
        positive(prefix, "eta", self.eta)?;
        positive(prefix, "eps", self.eps)?;
        if let Some(c) = self.lambda_step_scale {
            positive(prefix, "lambda_step_scale", c)?;
        }
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

struct Work<Y> {
    y_hat: Y,
    grad: Y,
    fy: Y,
    gy: Y,
    fx: Vec<f64>,
    gx: Vec<f64>,
    gx_hat: Vec<f64>,
}

/// The BOME solver.
pub struct Bome<Y: Vector> {
    config: BomeConfig,
    upper: UpperOptimizer,
    work: Option<Work<Y>>,
    /// Factor `min(1, c/λ_t)` of the current iteration (1 without the safeguard).
    step_scale: f64,
}

impl<Y: Vector> Bome<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: BomeConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Bome {
            config,
            upper,
            work: None,
            step_scale: 1.0,
        }
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Bome<P::Y> {
    fn name(&self) -> &'static str {
        "bome"
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
        let m = p.dim_x();
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                y_hat: z.clone(),
                grad: z.clone(),
                fy: z.clone(),
                gy: z,
                fx: vec![0.0; m],
                gx: vec![0.0; m],
                gx_hat: vec![0.0; m],
            }
        });
        let x = &state.x;
        wk.y_hat.assign(&state.y);
        gd_steps(
            p,
            x,
            &mut wk.y_hat,
            cfg.lower_steps,
            cfg.lower_lr,
            &mut wk.grad,
        );
        p.grad_g_x(x, &wk.y_hat, &mut wk.gx_hat);
        let g_hat = p.g(x, &wk.y_hat);
        p.grad_g(x, &state.y, &mut wk.gx, &mut wk.gy);
        let g_val = p.g(x, &state.y);
        p.grad_f(x, &state.y, &mut wk.fx, &mut wk.fy);
        let f = p.f(x, &state.y);
        let q = g_val - g_hat;
        // gx ← ∇_x q = ∇_x g(x, y) − ∇_x g(x, ŷ_T); ∇_y q = gy.
        for (a, b) in wk.gx.iter_mut().zip(&wk.gx_hat) {
            *a -= b;
        }
        let lower_grad_norm = wk.gy.norm();
        let gq2 = bilevel_core::vector::dot(&wk.gx, &wk.gx) + wk.gy.dot(&wk.gy);
        let inner = bilevel_core::vector::dot(&wk.fx, &wk.gx) + wk.fy.dot(&wk.gy);
        let phi = match cfg.phi {
            BomePhi::GradNorm => cfg.eta * gq2,
            BomePhi::Value => cfg.eta * q,
        };
        let lambda = ((phi - inner) / (gq2 + cfg.eps)).max(0.0);
        if !(lambda.is_finite() && q.is_finite()) {
            return Err(SolverError::NonFinite(format!(
                "bome: λ = {lambda}, q = {q}; reduce upper.lr (ξ) or lower_lr"
            )));
        }
        // d_x = ∇_x f + λ ∇_x q; d_y = ∇_y f + λ ∇_y g.
        let h: Vec<f64> = wk
            .fx
            .iter()
            .zip(&wk.gx)
            .map(|(a, b)| a + lambda * b)
            .collect();
        self.step_scale = match cfg.lambda_step_scale {
            Some(c) if lambda > c => c / lambda,
            _ => 1.0,
        };
        wk.fy.axpy(lambda, &wk.gy);
        // Stationarity of the value-gap problem min f s.t. q ≤ 0 (KKT): the joint direction
        // ‖(d_x, d_y)‖ — its x part alone vanishes wherever ∇_x f = 0 and ∇_x q = 0, e.g. at
        // any lower-level solution of circle-center, far from a solution — and only once the
        // constraint holds (q ≤ 1e-6 (1 + |g|)); `hypergradient_tol` is compared with it.
        let joint = (bilevel_core::vector::dot(&h, &h) + wk.fy.dot(&wk.fy)).sqrt();
        let stationarity = if q <= 1e-6 * (1.0 + g_val.abs()) {
            joint
        } else {
            f64::INFINITY
        };
        state.y.axpy(-self.upper.lr() * self.step_scale, &wk.fy);
        p.project_y(&mut state.y);
        Ok(StepReport {
            f,
            lower_grad_norm,
            hypergradient: h,
            diagnostics: None,
            selection: None,
            extra: vec![
                ("lambda".into(), lambda),
                ("q".into(), q),
                ("grad_q_norm".into(), gq2.sqrt()),
                ("joint_direction_norm".into(), joint),
            ],
            stationarity: Some(stationarity),
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]) {
        if self.step_scale == 1.0 {
            self.upper.step(&mut state.x, h);
        } else {
            let scaled: Vec<f64> = h.iter().map(|v| v * self.step_scale).collect();
            self.upper.step(&mut state.x, &scaled);
        }
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
    use crate::testutil::{norm, run_for, Quad};

    /// One iteration by hand on `g = y² − xy`, `f = ½(y − 1)² + ¼x²` (T = 2, β = 0.2, ξ = 0.1),
    /// for both choices of φ_t.
    #[test]
    fn first_iteration_by_hand() {
        let p = Quad::tiny();
        let (x, y, beta, xi, eta) = (0.8, 0.7, 0.2, 0.1, 0.5);
        let y1 = y - beta * (2.0 * y - x);
        let yh = y1 - beta * (2.0 * y1 - x);
        let g = |y: f64| y * y - x * y;
        let q = g(y) - g(yh);
        let (qx, qy) = (-y + yh, 2.0 * y - x);
        let (fx, fy) = (0.5 * x, y - 1.0);
        let gq2 = qx * qx + qy * qy;
        for (phi, phi_t) in [(BomePhi::GradNorm, eta * gq2), (BomePhi::Value, eta * q)] {
            let lambda = ((phi_t - (fx * qx + fy * qy)) / (gq2 + 1e-12)).max(0.0);
            assert!(lambda > 0.0);
            let cfg = BomeConfig {
                lower_steps: 2,
                lower_lr: beta,
                phi,
                eta,
                ..Default::default()
            };
            let mut s = Bome::new(cfg, 1);
            let mut st = State {
                x: vec![x],
                y: vec![y],
                iteration: 0,
            };
            let rep = s.hypergradient(&Counted::new(&p), &mut st, false).unwrap();
            let dx = fx + lambda * qx;
            let dy = fy + lambda * qy;
            assert!((rep.extra_value("lambda").unwrap() - lambda).abs() < 1e-14);
            assert!((rep.extra_value("q").unwrap() - q).abs() < 1e-15);
            assert!((rep.hypergradient[0] - dx).abs() < 1e-14, "{rep:?}");
            assert!((st.y[0] - (y - xi * dy)).abs() < 1e-14);
            BilevelSolver::<Quad>::upper_step(&mut s, &mut st, &rep.hypergradient);
            assert!((st.x[0] - (x - xi * dx)).abs() < 1e-14);
        }
    }

    /// Budget: 2000 iterations, ξ = 0.05, T = 10 on the strongly convex quadratic:
    /// ‖∇φ‖ drops by > 20× (3.56 → 0.078 for both φ_t; BOME reaches a neighbourhood whose size
    /// depends on T, η and ξ, not the exact stationary point).
    #[test]
    fn reduces_grad_phi_on_quadratic() {
        let p = Quad::small();
        let x0 = [1.5, -2.0];
        let g0 = norm(&p.reference_grad_phi(&x0).unwrap());
        for phi in [BomePhi::GradNorm, BomePhi::Value] {
            let cfg = BomeConfig {
                phi,
                upper: UpperConfig {
                    lr: 0.05,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut s = Bome::new(cfg, 2);
            let out = run_for(&p, &mut s, &x0, &[0.0; 3], 2000);
            let g = norm(&p.reference_grad_phi(&out.state.x).unwrap());
            eprintln!("{phi:?}: ‖∇φ‖ {g0} → {g}");
            assert!(g < 5e-2 * g0, "{phi:?}: ‖∇φ‖ {g0} → {g}");
        }
    }

    #[test]
    fn config_parses_and_validates() {
        let c: BomeConfig = toml::from_str("phi = \"value\"\neta = 0.2").unwrap();
        assert_eq!((c.phi, c.eta), (BomePhi::Value, 0.2));
        assert!(toml::from_str::<BomeConfig>("phi = \"norm\"").is_err());
    }
}
